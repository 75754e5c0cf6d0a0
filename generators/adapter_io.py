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
