#!/usr/bin/env python3
"""Independent Llama-family forward pass in numpy (no torch), to check gentune's model.

Usage: llama_reference.py MODEL_DIR [IDS_JSON]
  MODEL_DIR holds config.json and model.safetensors, or model.safetensors.index.json
  and its shards (Hugging Face layout, model_type llama, mistral, qwen2 or qwen3).
  IDS_JSON is a JSON array of token ids, or an array of such arrays (one
  sequence each, run separately); read from stdin when omitted.
Prints the logits, [T][vocab_size] (or one such array per sequence), computed
in float64.

Semantics follow transformers' modeling_llama.py / modeling_qwen2.py /
modeling_qwen3.py / modeling_mistral.py in eval mode with eager attention:
  - RMSNorm: x * rsqrt(mean(x^2) + rms_norm_eps) * weight.
  - q/k/v/o = nn.Linear (weights [out, in], y = x @ W.T + b); biases: Llama and
    Qwen3 per attention_bias on all four, Qwen2 on q/k/v always (never o),
    Mistral none. Llama's MLP per mlp_bias.
  - Qwen3: q_norm / k_norm, RMSNorm over head_dim of each head, before RoPE.
  - RoPE, rotate-half: q * cos + rotate_half(q) * sin with rotate_half(x) =
    cat(-x2, x1), emb = cat(freqs, freqs), freqs = position * inv_freq.
    inv_freq = 1 / theta^(arange(0, dim, 2) / dim) in float32, as
    modeling_rope_utils.py computes it; `linear` divides it by factor;
    `llama3` applies _compute_llama3_parameters (also in float32).
  - Grouped-query attention via repeat_kv (kv head h // n_rep), scores
    scaled by head_dim ** -0.5, causal mask, softmax.
  - MLP: down(silu(gate(x)) * up(x)).
  - Final RMSNorm; LM head = lm_head.weight, or embed_tokens when
    tie_word_embeddings.
"""
import json
import math
import os
import struct
import sys

import numpy as np

_NP_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


def read_safetensors(path):
    """Parses a safetensors file per the spec; returns {name: float64 array}."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n :]
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        np_dtype, size = _NP_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        assert end - begin == int(np.prod(shape)) * size, name
        raw = np.frombuffer(data[begin:end], dtype=np_dtype)
        if info["dtype"] == "BF16":
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = raw.astype(np.float64).reshape(shape)
    return tensors


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        raw = read_safetensors(single)
    else:
        with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
            weight_map = json.load(f)["weight_map"]
        raw = {}
        for shard in sorted(set(weight_map.values())):
            for name, value in read_safetensors(os.path.join(model_dir, shard)).items():
                if weight_map.get(name) == shard:
                    raw[name] = value
    weights = {}
    for name, value in raw.items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        weights[name if name.startswith(("model.", "lm_head.")) else "model." + name] = value
    return config, weights


class Shape:
    """The config as the modeling files read it (their defaults included)."""

    def __init__(self, c):
        self.type = c["model_type"]
        assert self.type in ("llama", "mistral", "qwen2", "qwen3"), self.type
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        default_head_dim = 128 if self.type == "qwen3" else self.hidden // self.heads
        self.head_dim = c.get("head_dim") or default_head_dim
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.rope_scaling = c.get("rope_scaling")
        self.tie = c.get("tie_word_embeddings", False)
        self.vocab = c["vocab_size"]
        self.max_positions = c["max_position_embeddings"]
        assert c.get("hidden_act", "silu") == "silu"
        self.qk_norm = self.type == "qwen3"


def inv_frequencies(s):
    """modeling_rope_utils.py, in float32 like torch."""
    f32 = np.float32
    dim = s.head_dim
    exponent = np.arange(0, dim, 2, dtype=np.int64).astype(f32) / f32(dim)
    inv = (f32(1.0) / (f32(s.theta) ** exponent)).astype(f32)
    scaling = s.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return (inv / f32(scaling["factor"])).astype(f32)
    assert kind == "llama3", kind
    factor = f32(scaling["factor"])
    low = scaling["low_freq_factor"]
    high = scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old / low
    high_freq_wavelen = old / high
    wavelen = (f32(2 * math.pi) / inv).astype(f32)
    inv_llama = np.where(wavelen > low_freq_wavelen, inv / factor, inv).astype(f32)
    smooth = ((f32(old) / wavelen - f32(low)) / f32(high - low)).astype(f32)
    smoothed = ((f32(1) - smooth) * inv_llama / factor + smooth * inv_llama).astype(f32)
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(medium, smoothed, inv_llama).astype(f32)


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def linear(x, w, name):
    y = x @ w[name + ".weight"].T
    bias = w.get(name + ".bias")
    return y if bias is None else y + bias


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def attention(x, w, p, s, cos, sin):
    t = x.shape[0]
    hd = s.head_dim
    q = linear(x, w, p + "self_attn.q_proj").reshape(t, s.heads, hd)
    k = linear(x, w, p + "self_attn.k_proj").reshape(t, s.kv_heads, hd)
    v = linear(x, w, p + "self_attn.v_proj").reshape(t, s.kv_heads, hd)
    if s.qk_norm:
        q = rms_norm(q, w[p + "self_attn.q_norm.weight"], s.eps)
        k = rms_norm(k, w[p + "self_attn.k_norm.weight"], s.eps)
    q, k, v = (a.transpose(1, 0, 2) for a in (q, k, v))  # [heads, T, hd]
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    n_rep = s.heads // s.kv_heads
    k = np.repeat(k, n_rep, axis=0)  # repeat_kv: query head h reads kv head h // n_rep
    v = np.repeat(v, n_rep, axis=0)
    scores = q @ k.transpose(0, 2, 1) * hd**-0.5
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    y = (probs @ v).transpose(1, 0, 2).reshape(t, s.heads * hd)
    return linear(y, w, p + "self_attn.o_proj")


def forward(config, w, ids):
    s = Shape(config)
    if len(ids) == 0 or len(ids) > s.max_positions or any(not (0 <= i < s.vocab) for i in ids):
        raise SystemExit(f"ids must be 1..{s.max_positions} tokens in [0, {s.vocab}), got {ids}")
    inv = inv_frequencies(s)
    freqs = (np.arange(len(ids), dtype=np.float32)[:, None] * inv[None, :]).astype(np.float32)
    emb = np.concatenate([freqs, freqs], axis=-1).astype(np.float64)
    cos, sin = np.cos(emb), np.sin(emb)
    x = w["model.embed_tokens.weight"][ids]
    for layer in range(s.layers):
        p = f"model.layers.{layer}."
        x = x + attention(rms_norm(x, w[p + "input_layernorm.weight"], s.eps), w, p, s, cos, sin)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], s.eps)
        gate = linear(h, w, p + "mlp.gate_proj")
        x = x + linear(gate / (1 + np.exp(-gate)) * linear(h, w, p + "mlp.up_proj"), w, p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], s.eps)
    head = w["model.embed_tokens.weight"] if s.tie else w["lm_head.weight"]
    return x @ head.T


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    ids = json.loads(argv[2] if len(argv) > 2 else sys.stdin.read())
    config, weights = load_model(argv[1])
    if ids and isinstance(ids[0], list):
        out = [forward(config, weights, [int(i) for i in row]).tolist() for row in ids]
    else:
        out = forward(config, weights, [int(i) for i in ids]).tolist()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
