"""The refiner: a diffusion family + weights (base model, optionally a block-diffusion LoRA adapter).

One set of base weights serves both roles: the planner / AR fallback uses the base model as it is;
the refiner packs the same weights for fast block forwards (`PackedBlockModel`) with the adapter's
low-rank factors beside them, unmerged, so a forward can adapt every token (the threshold decoder)
or only the draft tokens (draft-and-verify: the clean tokens are the planner's own computation).
The planner's weights never change.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from generators.adapter_io import apply_adapter, lora_factors
from generators.decoding.ar import ARConfig, generate_ar
from generators.decoding.widths import WidthPolicy
from generators.decoding.families import DiffusionFamily, get_family
from generators.decoding.lookup import PromptLookup
from generators.decoding.block_decoder import StopChecker, generate_diffusion
from generators.decoding.model import BlockModel, ModuleBlockModel, PackedBlockModel
from generators.decoding.proposals import DecodeConfig
from generators.decoding.commit_rules import Strategy
from generators.decoding.verify import generate_verified
from generators.loading import LoadedModel
from generators.results import RowResult

log = logging.getLogger(__name__)


@dataclass
class Refiner:
    name: str
    block_model: BlockModel
    family: DiffusionFamily | None
    """None: no diffusion adapter for this model; spans decode on the engine with no adapter drafts."""
    mask_token_id: int
    tokenizer: object
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    width: WidthPolicy | None = None
    """Drafts per step when the strategy sets no forward budget (the runtime's cost-table policy)."""
    lookup: PromptLookup | None = None
    """Prompt-lookup drafts beside the adapter's (or alone, without one); None: off."""

    def generate(self, prompts: Sequence[Sequence[int]], *, config: DecodeConfig, strategy: Strategy,
                 seeds: Sequence[int] | None = None, max_new_tokens: Sequence[int] | None = None,
                 stop_checker: StopChecker | None = None, eos_token_ids: Sequence[int] | None = None) -> list[RowResult]:
        if self.family is None:
            return generate_ar(self.block_model, prompts, eos_token_ids=self.eos_token_ids if eos_token_ids is None
                               else eos_token_ids, pad_token_id=self.pad_token_id,
                               config=ARConfig(config.max_new_tokens, config.temperature, config.top_p), seeds=seeds,
                               max_new_tokens=max_new_tokens, stop_checker=stop_checker, lookup=self.lookup,
                               width=self.width)
        common = dict(family=self.family, mask_token_id=self.mask_token_id,
                      eos_token_ids=self.eos_token_ids if eos_token_ids is None else eos_token_ids,
                      pad_token_id=self.pad_token_id, config=config, seeds=seeds, max_new_tokens=max_new_tokens,
                      stop_checker=stop_checker)
        if strategy.verifies:
            width = self.width if strategy.forward_budget is None else None
            return generate_verified(self.block_model, prompts, drafts=strategy.drafts, tree=strategy.draft_tree,
                                     verify_on_base=strategy.verify_on_base, forward_budget=strategy.forward_budget,
                                     width=width, lookup=self.lookup, **common)
        return generate_diffusion(self.block_model, prompts, strategy=strategy, **common)


def load_refiner(base: LoadedModel, *, family: str | None = "smollm2-block-lora", adapter: Path | str | None = None,
                 packed: bool | None = None) -> Refiner:
    """Build the refiner from an already loaded base model.

    family: None: no diffusion adapter (the engine decodes the spans with the drafts it has).
    adapter: a peft LoRA folder (kept unmerged: see the module docstring), or None for the base as is.
    packed:  use the packed CPU fast path (default: on CPU).
    """
    if family is None:
        return Refiner(f"{base.name} (no diffusion adapter)", base.engine, None, -1, base.tokenizer, base.eos_token_ids,
                       base.pad_token_id)
    fam = get_family(family)
    mask_id = fam.resolve_mask_id(base.tokenizer)
    name = base.name if adapter is None else f"{base.name}+{Path(adapter).name}"
    if packed is None:
        packed = base.device.type == "cpu"
    block_model: BlockModel
    if packed:  # the engine's prepared weights, shared, with the adapter's factors beside them (never merged)
        engine = base.engine if hasattr(base.engine, "with_lora") else PackedBlockModel(base.model)
        block_model = engine.with_lora(lora_factors(Path(adapter))) if adapter is not None else engine
    elif adapter is not None:  # a live, unmerged peft adapter on a copy: the planner's model stays as it is
        block_model = ModuleBlockModel(apply_adapter(copy.deepcopy(base.model), Path(adapter)).eval())
    else:
        block_model = ModuleBlockModel(base.model)
    return Refiner(name, block_model, fam, mask_id, base.tokenizer, base.eos_token_ids, base.pad_token_id)

