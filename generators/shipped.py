"""Weights that ship inside the repository (small, trained by this project)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_ADAPTER_DIR = WEIGHTS_DIR / "smollm2-block-lora"


def default_adapter_path() -> Path | None:
    """The shipped block-diffusion LoRA for the default model, or None if this checkout has none."""
    return DEFAULT_ADAPTER_DIR if (DEFAULT_ADAPTER_DIR / "adapter_config.json").exists() else None
