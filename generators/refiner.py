"""The refiner: a diffusion family + weights (base model, optionally a block-diffusion LoRA adapter).

One set of base weights serves both roles: the planner / AR fallback uses the base model as it is;
the refiner uses the base with the adapter merged in, packed for fast block forwards
(`PackedBlockModel`). Merging happens on a copy, so the planner's weights never change.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from generators.adapter_io import apply_adapter
from generators.diffusion.adapters import DiffusionFamily, get_family
from generators.diffusion.decoder import StopChecker, generate_diffusion
from generators.diffusion.model import BlockModel, ModuleBlockModel, PackedBlockModel
from generators.diffusion.proposals import DecodeConfig
from generators.diffusion.strategies import Strategy
from generators.loading import LoadedModel
from generators.results import RowResult

log = logging.getLogger(__name__)


@dataclass
class Refiner:
    name: str
    block_model: BlockModel
    family: DiffusionFamily
    mask_token_id: int
    tokenizer: object
    eos_token_ids: tuple[int, ...]
    pad_token_id: int

    def generate(self, prompts: Sequence[Sequence[int]], *, config: DecodeConfig, strategy: Strategy,
                 seeds: Sequence[int] | None = None, max_new_tokens: Sequence[int] | None = None,
                 stop_checker: StopChecker | None = None, eos_token_ids: Sequence[int] | None = None) -> list[RowResult]:
        return generate_diffusion(
            self.block_model, prompts, family=self.family, mask_token_id=self.mask_token_id,
            eos_token_ids=self.eos_token_ids if eos_token_ids is None else eos_token_ids,
            pad_token_id=self.pad_token_id, config=config, strategy=strategy, seeds=seeds,
            max_new_tokens=max_new_tokens, stop_checker=stop_checker,
        )


def load_refiner(base: LoadedModel, *, family: str = "smollm2-block-lora", adapter: Path | str | None = None,
                 packed: bool | None = None) -> Refiner:
    """Build the refiner from an already loaded base model.

    adapter: a peft LoRA folder (merged into a copy of the weights), or None for the base as is.
    packed:  use the packed CPU fast path (default: on CPU).
    """
    fam = get_family(family)
    mask_id = fam.resolve_mask_id(base.tokenizer)
    model = base.model
    name = base.name
    if adapter is not None:
        adapter = Path(adapter)
        model = apply_adapter(copy.deepcopy(model), adapter).merge_and_unload().eval()
        name = f"{base.name}+{adapter.name}"
    if packed is None:
        packed = base.device.type == "cpu"
    block_model: BlockModel = PackedBlockModel(model) if packed else ModuleBlockModel(model)
    if packed and model is not base.model:
        del model  # the packed copy holds every weight it needs
    return Refiner(name, block_model, fam, mask_id, base.tokenizer, base.eos_token_ids, base.pad_token_id)

