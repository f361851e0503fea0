#!/usr/bin/env python3
"""PEFT adapter folders in numpy (no torch, no peft), to check gentune's adapters.

Usage:
  peft_adapter.py make MODEL_DIR OUT_DIR SPEC_JSON
      Writes a PEFT LoRA adapter folder (adapter_config.json +
      adapter_model.safetensors) for the GPT-2 in MODEL_DIR, with random non-zero
      A and B. SPEC_JSON: {"r", "lora_alpha", "target_modules", "seed",
      optional "use_rslora", "layers_to_transform", "dtype" (F32/F16/BF16),
      "prefix" (default "base_model.model.transformer."), "base_model_name_or_path"}.
  peft_adapter.py logits MODEL_DIR ADAPTER_DIR [IDS_JSON]
      Prints the logits [T][vocab] (float64) of the base model with the adapter
      applied; ids are read from stdin when IDS_JSON is omitted.
  peft_adapter.py inspect ADAPTER_DIR
      Prints {"config": adapter_config.json, "tensors": {name: {dtype, shape}}}.

What PEFT does, restated here independently of gentune's TypeScript:
- tensor keys are PeftModel.state_dict() keys without the adapter name:
  base_model.model.transformer.h.{i}.attn.c_attn.lora_A.weight [r, in] and
  ...lora_B.weight [out, r] (peft/utils/save_and_load.py, tuners/lora/layer.py);
- target_modules entries select a module whose name equals the entry or ends
  with "." + entry (tuners_utils.check_target_module_exists);
- the Conv1D weight W [in, out] (fan_in_fan_out) becomes
  W + scaling * (B @ A).T with scaling = lora_alpha / r, or lora_alpha / sqrt(r)
  when use_rslora (LoraLayer.update_layer, Linear.get_delta_weight).
peft_type "LAST_LAYERS" (gentune's own) replaces the named tensors outright.
"""
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_reference import forward, load_model, read_safetensors  # noqa: E402

TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
_STORE = {"F32": "<f4", "F16": "<f2"}


def write_safetensors(path, tensors, dtype="F32"):
    """Writes {name: array} per the safetensors spec (sorted names, header padded to 8 bytes)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "BF16":  # round to nearest even, keep the top 16 bits
            bits = a.view(np.uint32).astype(np.uint64)
            raw = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")).tobytes()
        else:
            raw = a.astype(_STORE[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def selected(config, n_layer):
    """(layer, target) pairs a list-form target_modules selects, as PEFT matches them."""
    entries = config["target_modules"]
    layers = config.get("layers_to_transform")
    layers = [layers] if isinstance(layers, int) else layers
    out = []
    for i in range(n_layer):
        for t in TARGETS:
            name = f"transformer.h.{i}.{t}"
            if any(name == e or name.endswith("." + e) for e in entries) and (layers is None or i in layers):
                out.append((i, t))
    return out


def make(model_dir, out_dir, spec):
    base_config, weights = load_model(model_dir)
    rng = np.random.default_rng(spec["seed"])
    r = spec["r"]
    config = {
        "alpha_pattern": {},
        "base_model_name_or_path": spec.get("base_model_name_or_path", "tiny-gpt2"),
        "bias": "none",
        "fan_in_fan_out": True,
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
    prefix = spec.get("prefix", "base_model.model.transformer.")
    tensors = {}
    for i, t in selected(config, base_config["n_layer"]):
        d_in, d_out = weights[f"h.{i}.{t}.weight"].shape
        tensors[f"{prefix}h.{i}.{t}.lora_A.weight"] = rng.uniform(-1, 1, (r, d_in)) / math.sqrt(d_in)
        tensors[f"{prefix}h.{i}.{t}.lora_B.weight"] = rng.normal(0, 0.3, (d_out, r))
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "adapter_model.safetensors"), tensors, spec.get("dtype", "F32"))
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def apply_adapter(weights, adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    tensors, _ = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))

    def bare(name):
        name = name[len("base_model.model.") :]
        return name[len("transformer.") :] if name.startswith("transformer.") else name

    weights = dict(weights)
    if config["peft_type"] == "LAST_LAYERS":
        for name, value in tensors.items():
            assert bare(name) in weights, name
            weights[bare(name)] = value
        return weights
    assert config["peft_type"] == "LORA", config["peft_type"]
    r = config["r"]
    scaling = config["lora_alpha"] / (math.sqrt(r) if config.get("use_rslora") else r)
    for name, a in tensors.items():
        if ".lora_A." not in name:
            continue
        b = tensors[name.replace(".lora_A.", ".lora_B.")]
        module = bare(name)[: -len(".lora_A.weight")]
        w = weights[module + ".weight"]  # Conv1D: [in, out]
        assert a.shape == (r, w.shape[0]) and b.shape == (w.shape[1], r), (name, a.shape, b.shape, w.shape)
        weights[module + ".weight"] = w + scaling * (b @ a).T
    return weights


def inspect(adapter_dir):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    with open(os.path.join(adapter_dir, "adapter_model.safetensors"), "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    tensors = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in header.items()}
    return {"config": config, "tensors": tensors}


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "make" and len(argv) == 5:
        make(argv[2], argv[3], json.loads(argv[4]))
    elif cmd == "logits" and len(argv) in (4, 5):
        ids = json.loads(argv[4] if len(argv) > 4 else sys.stdin.read())
        config, weights = load_model(argv[2])
        logits = forward(config, apply_adapter(weights, argv[3]), [int(i) for i in ids])
        json.dump(logits.tolist(), sys.stdout)
    elif cmd == "inspect" and len(argv) == 3:
        json.dump(inspect(argv[2]), sys.stdout)
    else:
        raise SystemExit(__doc__)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
