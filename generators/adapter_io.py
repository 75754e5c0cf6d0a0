"""Saving and loading LoRA adapters as bf16 safetensors shards (each under a size limit).

    adapter_config.json                     peft's LoraConfig
    adapter_model-00001-of-00002.safetensors
    adapter_model-00002-of-00002.safetensors
    (or a single adapter_model.safetensors, as peft writes it)

Sharding keeps every file small enough for the repository and for transfers with per-file limits;
bf16 halves the size with no measurable effect on a LoRA delta.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MAX_SHARD_BYTES = 15 * 2**20


def save_adapter(peft_model, out_dir: Path, *, base_name: str = "smollm2-135m-instruct",
                 max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    from peft import get_peft_model_state_dict

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in get_peft_model_state_dict(peft_model).items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    for old in out_dir.glob("adapter_model*.safetensors"):
        old.unlink()
    paths = []
    for i, shard in enumerate(shards, start=1):
        path = out_dir / f"adapter_model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path), metadata={"format": "pt"})
        paths.append(path)
    config = peft_model.peft_config["default"].to_dict()
    config["base_model_name_or_path"] = base_name
    config["target_modules"] = sorted(config["target_modules"]) if isinstance(config["target_modules"], (set, list)) else config["target_modules"]
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2, default=str))
    return paths


def load_adapter_state(adapter_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted(adapter_dir.glob("adapter_model-*-of-*.safetensors")) or sorted(adapter_dir.glob("adapter_model.safetensors"))
    if not files:
        raise FileNotFoundError(f"no adapter weights (adapter_model*.safetensors) in {adapter_dir}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def apply_adapter(model: torch.nn.Module, adapter_dir: Path):
    """Wrap `model` in a PeftModel carrying the adapter (weights cast to the model's dtype)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"no LoRA adapter at {adapter_dir} (adapter_config.json missing)")
    raw = json.loads(config_path.read_text())
    fields = {k: v for k, v in raw.items() if k in LoraConfig.__dataclass_fields__ and k not in {"peft_type", "task_type"}}
    fields["inference_mode"] = True
    fields.pop("base_model_name_or_path", None)  # a cache path of the machine that trained it
    peft_model = get_peft_model(model, LoraConfig(**fields))
    dtype = next(model.parameters()).dtype
    state = {k: v.to(dtype) for k, v in load_adapter_state(adapter_dir).items()}
    result = set_peft_model_state_dict(peft_model, state)
    missing = [k for k in getattr(result, "unexpected_keys", [])]
    if missing:
        raise ValueError(f"adapter at {adapter_dir} does not fit this model: unexpected keys {missing[:3]}...")
    return peft_model


LoraFactors = dict[int, dict[str, tuple[torch.Tensor, torch.Tensor, float]]]
"""layer index -> projection name (q_proj, ..., down_proj) -> (A (r, in), B (out, r), scale)."""

_LORA_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+_proj)\.lora_([AB])(?:\.default)?\.weight$")


def lora_factors(adapter_dir: Path) -> LoraFactors:
    """The adapter's low-rank factors, unmerged (for a forward that applies them to some tokens only)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    r, alpha = int(config["r"]), float(config.get("lora_alpha", config["r"]))
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    return _collect(load_adapter_state(adapter_dir).items(), lambda _name: scale, where=str(adapter_dir))


def lora_factors_of(peft_model) -> LoraFactors:
    """The same, read from a live peft model (its 'default' adapter)."""
    scales = {name: module.scaling["default"] for name, module in peft_model.named_modules()
              if isinstance(getattr(module, "scaling", None), dict) and "default" in module.scaling}

    def scale_of(key: str) -> float:
        return float(scales[key.rsplit(".lora_", 1)[0]])

    state = ((k, v.detach()) for k, v in peft_model.named_parameters() if ".lora_" in k)
    return _collect(state, scale_of, where="peft model")


def _collect(items, scale_of, *, where: str) -> LoraFactors:
    found: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    scales: dict[tuple[int, str], float] = {}
    for key, tensor in items:
        m = _LORA_KEY.search(key)
        if m is None:
            raise ValueError(f"{where}: unexpected LoRA weight {key!r} (expected layers.N.<attn|mlp>.<proj>.lora_A/B)")
        layer, proj, ab = int(m.group(1)), m.group(2), m.group(3)
        found.setdefault((layer, proj), {})[ab] = tensor
        scales[(layer, proj)] = scale_of(key)
    out: LoraFactors = {}
    for (layer, proj), ab in found.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"{where}: layer {layer} {proj} has lora_{''.join(ab)} only")
        out.setdefault(layer, {})[proj] = (ab["A"], ab["B"], scales[(layer, proj)])
    return out
