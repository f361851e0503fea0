#!/usr/bin/env python3
"""Independent Llama-family forward pass in numpy (no torch), to check gentune's model.

Usage:
  llama_reference.py MODEL_DIR [--adapter ADAPTER_DIR] [IDS_JSON]
      MODEL_DIR holds config.json and model.safetensors, or model.safetensors.index.json
      and its shards (Hugging Face layout, model_type llama, mistral, qwen2 or qwen3).
      IDS_JSON is a JSON array of token ids, or an array of such arrays (one
      sequence each, run separately); read from stdin when omitted.
      Prints the logits, [T][vocab_size] (or one such array per sequence), computed
      in float64, with the PEFT adapter in ADAPTER_DIR applied when given (LoRA,
      or gentune's LAST_LAYERS, which replaces the tensors it holds).
  llama_reference.py make-adapter MODEL_DIR OUT_DIR SPEC_JSON
      Writes a PEFT LoRA adapter folder for the model with random non-zero A and B.
      SPEC_JSON: {"r", "lora_alpha", "target_modules", "seed", optional "use_rslora",
      "layers_to_transform", "dtype" (F32/F16/BF16), "prefix" (default
      "base_model.model.model."), "base_model_name_or_path"}.
  llama_reference.py lora-grad MODEL_DIR ADAPTER_DIR [REQUEST_JSON]
      REQUEST_JSON (stdin when omitted): {"rows": [{"ids", "targets", "weights"}],
      "layers": [layer indices], "eps"}. Prints {"loss", "grads": {tensor key:
      [[...]]}}: the loss sum_t w_t * CE(logits_t, target_t) / sum_t w_t over all
      rows (each run alone from position 0) and, by central finite differences in
      float64, its gradient for every lora_A / lora_B tensor of those layers.

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

LoRA as PEFT's tuners/lora/layer.py Linear computes it, unmerged: a module
(nn.Linear, weight [out, in]) selected by target_modules (name equal to an
entry or ending in "." + entry, utils.check_target_module_exists; layers per
layers_to_transform) gains scaling * lora_B(lora_A(x)) = scaling * x @ A.T @
B.T, A [r, in], B [out, r], scaling = lora_alpha / r (lora_alpha / sqrt(r)
with use_rslora). Keys: base_model.model. + the module's name in
LlamaForCausalLM (model.layers.{i}.self_attn.q_proj) + .lora_A.weight.
"""
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peft_adapter import write_safetensors  # noqa: E402  (the safetensors writer only)

TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")

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


def linear(x, w, name, lora=None):
    y = x @ w[name + ".weight"].T
    bias = w.get(name + ".bias")
    if bias is not None:
        y = y + bias
    if lora and name in lora:
        a, b, scaling = lora[name]
        y = y + scaling * ((x @ a.T) @ b.T)
    return y


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def attention(x, w, p, s, cos, sin, lora):
    t = x.shape[0]
    hd = s.head_dim
    q = linear(x, w, p + "self_attn.q_proj", lora).reshape(t, s.heads, hd)
    k = linear(x, w, p + "self_attn.k_proj", lora).reshape(t, s.kv_heads, hd)
    v = linear(x, w, p + "self_attn.v_proj", lora).reshape(t, s.kv_heads, hd)
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
    return linear(y, w, p + "self_attn.o_proj", lora)


def forward(config, w, ids, lora=None):
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
        x = x + attention(rms_norm(x, w[p + "input_layernorm.weight"], s.eps), w, p, s, cos, sin, lora)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], s.eps)
        gate = linear(h, w, p + "mlp.gate_proj", lora)
        up = linear(h, w, p + "mlp.up_proj", lora)
        x = x + linear(gate / (1 + np.exp(-gate)) * up, w, p + "mlp.down_proj", lora)
    x = rms_norm(x, w["model.norm.weight"], s.eps)
    head = w["model.embed_tokens.weight"] if s.tie else w["lm_head.weight"]
    return x @ head.T


def module_name(key):
    """A PEFT key's module in LlamaForCausalLM: drop base_model.model., restore an omitted model. root."""
    assert key.startswith("base_model.model."), key
    name = key[len("base_model.model.") :]
    return name if name.startswith(("model.", "lm_head.")) else "model." + name


def load_adapter(weights, adapter_dir):
    """(weights, lora): LAST_LAYERS replaces tensors; LORA gives {module: (A, B, scaling)}."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    if config["peft_type"] == "LAST_LAYERS":
        weights = dict(weights)
        for key, value in tensors.items():
            name = module_name(key)
            assert name in weights and weights[name].shape == value.shape, (key, value.shape)
            weights[name] = value
        return weights, None
    assert config["peft_type"] == "LORA", config["peft_type"]
    r = config["r"]
    scaling = config["lora_alpha"] / (math.sqrt(r) if config.get("use_rslora") else r)
    lora = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            assert key.endswith(".lora_B.weight"), key
            continue
        module = module_name(key[: -len(".lora_A.weight")])
        b = tensors[key.replace(".lora_A.", ".lora_B.")]
        w = weights[module + ".weight"]  # nn.Linear: [out, in]
        assert a.shape == (r, w.shape[1]) and b.shape == (w.shape[0], r), (key, a.shape, b.shape, w.shape)
        lora[module] = (a, b, scaling)
    return weights, lora


def selected_modules(spec, n_layers):
    """Module names a list-form target_modules selects, by PEFT's suffix rule."""
    layers = spec.get("layers_to_transform")
    layers = [layers] if isinstance(layers, int) else layers
    out = []
    for i in range(n_layers):
        for t in TARGETS:
            name = f"model.layers.{i}.{t}"
            if any(name == e or name.endswith("." + e) for e in spec["target_modules"]) and (layers is None or i in layers):
                out.append(name)
    return out


def make_adapter(model_dir, out_dir, spec):
    config, weights = load_model(model_dir)
    rng = np.random.default_rng(spec["seed"])
    r = spec["r"]
    prefix = spec.get("prefix", "base_model.model.model.")
    tensors = {}
    for name in selected_modules(spec, config["num_hidden_layers"]):
        d_out, d_in = weights[name + ".weight"].shape
        key = prefix + name[len("model.") :]
        tensors[key + ".lora_A.weight"] = rng.uniform(-1, 1, (r, d_in)) / math.sqrt(d_in)
        tensors[key + ".lora_B.weight"] = rng.normal(0, 0.3, (d_out, r))
    adapter_config = {
        "alpha_pattern": {},
        "base_model_name_or_path": spec.get("base_model_name_or_path", "tiny-llama"),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": spec.get("layers_to_transform"),
        "lora_alpha": spec["lora_alpha"],
        "lora_dropout": 0.05,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": spec["target_modules"],
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": spec.get("use_rslora", False),
    }
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors, spec.get("dtype", "F32"))
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)


def weighted_loss(config, weights, rows, lora):
    """sum_t w_t * (logsumexp(logits_t) - logits_t[target_t]) / sum_t w_t over every row."""
    total, norm = 0.0, 0.0
    for row in rows:
        logits = forward(config, weights, [int(i) for i in row["ids"]], lora)
        top = logits.max(axis=-1, keepdims=True)
        lse = (top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)))[:, 0]
        for t, (target, wt) in enumerate(zip(row["targets"], row["weights"])):
            if wt > 0:
                total += wt * (lse[t] - logits[t, int(target)])
                norm += wt
    return total / norm


def lora_grad(model_dir, adapter_dir, request):
    config, weights = load_model(model_dir)
    weights, lora = load_adapter(weights, adapter_dir)
    assert lora is not None, "lora-grad takes a LoRA adapter"
    rows, eps = request["rows"], request.get("eps", 1e-5)
    layers = set(request["layers"])
    grads = {}
    for module, (a, b, scaling) in sorted(lora.items()):
        if int(module.split(".")[2]) not in layers:
            continue
        for which, m in (("A", a), ("B", b)):
            g = np.zeros_like(m)
            for idx in np.ndindex(m.shape):
                keep = m[idx]
                m[idx] = keep + eps
                up = weighted_loss(config, weights, rows, lora)
                m[idx] = keep - eps
                down = weighted_loss(config, weights, rows, lora)
                m[idx] = keep
                g[idx] = (up - down) / (2 * eps)
            grads[f"base_model.model.{module}.lora_{which}.weight"] = g.tolist()
    return {"loss": weighted_loss(config, weights, rows, lora), "grads": grads}


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    if argv[1] == "make-adapter" and len(argv) == 5:
        make_adapter(argv[2], argv[3], json.loads(argv[4]))
        return
    if argv[1] == "lora-grad" and len(argv) in (4, 5):
        request = json.loads(argv[4] if len(argv) > 4 else sys.stdin.read())
        json.dump(lora_grad(argv[2], argv[3], request), sys.stdout)
        sys.stdout.write("\n")
        return
    args = argv[1:]
    adapter = None
    if "--adapter" in args:
        at = args.index("--adapter")
        adapter = args[at + 1]
        del args[at : at + 2]
    ids = json.loads(args[1] if len(args) > 1 else sys.stdin.read())
    config, weights = load_model(args[0])
    lora = None
    if adapter:
        weights, lora = load_adapter(weights, adapter)
    if ids and isinstance(ids[0], list):
        out = [forward(config, weights, [int(i) for i in row], lora).tolist() for row in ids]
    else:
        out = forward(config, weights, [int(i) for i in ids], lora).tolist()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
