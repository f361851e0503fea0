#!/usr/bin/env python3
"""Independent GPT-2 forward pass in numpy (no torch), to check gentune's model.

Usage: gpt2_reference.py MODEL_DIR [IDS_JSON]
  MODEL_DIR holds config.json + model.safetensors (Hugging Face GPT-2 layout).
  IDS_JSON is a JSON array of token ids; read from stdin when omitted.
Prints the logits, a JSON array [T][vocab_size], computed in float64.

Semantics follow transformers' GPT2LMHeadModel (eval mode): learned position
embeddings, pre-LN blocks, Conv1D weights stored [in, out], causal attention
scaled by 1/sqrt(head_dim), gelu_new (or exact gelu), final LayerNorm, LM head
tied to wte.
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np

_NP_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}
# Tied LM head and causal-mask buffers: not weights (and the buffers may be BOOL).
_IGNORED = re.compile(r"^(transformer\.)?(lm_head\.weight|h\.\d+\.attn\.(bias|masked_bias))$")


def read_safetensors(path, keep=lambda name: True):
    """Parses a safetensors file per the spec; returns ({name: float64 array}, metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n :]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        if not keep(name):
            continue
        np_dtype, size = _NP_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        assert end - begin == int(np.prod(shape)) * size, name
        raw = np.frombuffer(data[begin:end], dtype=np_dtype)
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = raw.astype(np.float64).reshape(shape)
    return tensors, metadata


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    raw, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"), lambda n: not _IGNORED.match(n))
    weights = {}
    for name, value in raw.items():
        weights[name[len("transformer.") :] if name.startswith("transformer.") else name] = value
    return config, weights


def layer_norm(x, w, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


_erf = np.vectorize(math.erf)


def gelu_exact(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def attention(x, w, p, n_head):
    t, d = x.shape
    hd = d // n_head
    qkv = x @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
    q, k, v = (qkv[:, i * d : (i + 1) * d].reshape(t, n_head, hd).transpose(1, 0, 2) for i in range(3))
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)  # [H, T, T]
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    y = (probs @ v).transpose(1, 0, 2).reshape(t, d)
    return y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]


def forward(config, w, ids):
    eps = config.get("layer_norm_epsilon", 1e-5)
    n_head = config["n_head"]
    act = gelu_exact if config.get("activation_function", "gelu_new") == "gelu" else gelu_new
    n_pos = config.get("n_positions", config.get("n_ctx"))
    vocab = config["vocab_size"]
    if len(ids) == 0 or len(ids) > n_pos or any(not (0 <= i < vocab) for i in ids):
        raise SystemExit(f"ids must be 1..{n_pos} tokens in [0, {vocab}), got {ids}")
    x = w["wte.weight"][ids] + w["wpe.weight"][np.arange(len(ids))]
    for layer in range(config["n_layer"]):
        p = f"h.{layer}."
        x = x + attention(layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps), w, p, n_head)
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        h = act(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    return x @ w["wte.weight"].T


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    ids = json.loads(argv[2] if len(argv) > 2 else sys.stdin.read())
    config, weights = load_model(argv[1])
    logits = forward(config, weights, [int(i) for i in ids])
    json.dump(logits.tolist(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
