"""Per-process runtime: the loaded models and this process's worker identity.

Models load lazily on first use, once per process. A Celery prefork worker builds its Runtime in
the child after fork (never in the parent), so each child owns its weights and its DB pool.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generators.decoding.lookup import PromptLookup
from generators.decoding.widths import WidthPolicy, cost_width
from generators.decoding.proposals import DecodeConfig
from generators.decoding.commit_rules import CommitRule, Strategy, Verify
from generators.loading import LoadedModel, load_model
from pipeline.settings import Settings, parse_overrides

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _planner: LoadedModel | None = field(default=None, init=False, repr=False)
    _refiner: Any = field(default=None, init=False, repr=False)
    _cost_table: Any = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self):
        from kernels.registry import set_default_backend

        set_default_backend(self.settings.kernels)

    @property
    def planner(self) -> LoadedModel:
        """The AR model: planner, AR spans and fallback."""
        with self._lock:
            if self._planner is None:
                s = self.settings
                self._planner = load_model(s.model, cache_dir=s.cache_dir, device=s.device, dtype=s.dtype)
                if s.cuda_graphs and self._planner.device.type == "cuda":
                    from generators.decoding.cuda_graphs import GraphedModel

                    self._planner.extras["engine"] = GraphedModel(self._planner.engine)
            return self._planner

    @property
    def refiner(self):
        """The block-diffusion refiner: the planner's weights packed, with the adapter's factors beside them."""
        with self._lock:
            if self._refiner is None:
                from generators.decoding.refiner import load_refiner

                try:
                    family, adapter = refiner_family_and_adapter(self.settings, self.planner)
                    self._refiner = load_refiner(self.planner, family=family, adapter=adapter)
                except ValueError as e:  # e.g. the family's mask token is not in this model's vocabulary
                    log.error("refiner: %s; hybrid spans are decoded without an adapter", e)
                    self._refiner = load_refiner(self.planner, family=None)
                if self._refiner.family is None:  # said once, at start-up; no item fails for it
                    log.warning("refiner: no diffusion adapter for %s (HYBRIDGEN_REFINER_FAMILY=%s): hybrid spans are "
                                "written by the engine's AR step with the drafts it has; set HYBRIDGEN_REFINER_FAMILY "
                                "and HYBRIDGEN_REFINER_ADAPTER to use one", self.planner.name,
                                self.settings.refiner_family)
                if self.settings.cuda_graphs and self.planner.device.type == "cuda" and \
                        not hasattr(self._refiner.block_model, "static_cache"):
                    from generators.decoding.cuda_graphs import GraphedModel

                    self._refiner.block_model = GraphedModel(self._refiner.block_model)
                self._refiner.lookup = self.lookup
                self._refiner.width = (self.lookup_width if self._refiner.family is None  # no blocks: lookup drafts only
                                       else cost_width(self.cost_table, DRAFT_ACCEPT_RATE))
            return self._refiner

    @property
    def lookup(self) -> PromptLookup | None:
        """Prompt-lookup drafts for the planner and the refiner (None: HYBRIDGEN_LOOKUP_DRAFTS=0)."""
        most = self.settings.lookup_drafts
        return PromptLookup(most=most) if most else None

    @property
    def lookup_width(self) -> WidthPolicy:
        """How many prompt-lookup drafts a step without adapter blocks carries: the cost table's choice."""
        return cost_width(self.cost_table, LOOKUP_ACCEPT_RATE)

    @property
    def cost_table(self):
        """The engine's forward cost table (measured once per machine, then read once per process)."""
        with self._lock:
            if self._cost_table is None:
                self._cost_table = engine_cost_table(self.settings, self.planner)
            return self._cost_table

    def refine_settings(self, kind: str) -> RefineSettings:
        """How the refiner writes this kind's spans (decoder, block sizes, threshold, no-repeat rule)."""
        return refine_settings(self.settings, kind, cuda=self.planner.device.type == "cuda")


DRAFT_ACCEPT_RATE = 0.35
"""Expected share of adapter drafts the model accepts, for the width choice: measured, the shipped
adapter yields 1.455 tokens per forward at 2 drafts on the benchmark prompts in bf16
(benchmarks/engine.py), and 1 + a + a^2 = 1.455 gives a = 0.35."""


LOOKUP_ACCEPT_RATE = 0.5
"""Expected share of prompt-lookup drafts accepted, for the width choice (a found n-gram's
continuation is right more often than the adapter's guess; see docs/benchmarks.md)."""


def engine_cost_table(settings: Settings, planner: LoadedModel):
    """The engine's forward cost table for this model, dtype, device and thread count: measured once per
    machine (a few seconds) and cached under the cache folder."""
    import torch

    from generators.decoding.widths import cached_cost_table

    engine = planner.engine
    key = f"{planner.name}-{str(engine.dtype).replace('torch.', '')}-{engine.device}-{torch.get_num_threads()}t"
    return cached_cost_table(engine, settings.cache_dir / "cost-tables", key)


def refiner_family_and_adapter(settings: Settings, planner: LoadedModel) -> tuple[str | None, str | Path | None]:
    """(diffusion family or None, adapter folder or None) for this model.

    auto: the shipped SmolLM2 adapter for the default model, the test family for the tiny models,
    and for any other model no adapter (its spans are drafted without one) unless an adapter folder
    is given, which then needs HYBRIDGEN_REFINER_FAMILY to say how to read it."""
    from generators.loading import DEFAULT_MODEL_ALIAS
    from generators.shipped import default_adapter_path
    from generators.tiny import TINY_FAMILIES, TINY_WITH_DEFAULT_TOKENIZER

    family, adapter = settings.refiner_family, settings.refiner_adapter
    own_adapter = None if adapter in ("default", "none") else Path(adapter).expanduser()
    if family == "none":
        return None, None
    if family == "auto":
        if settings.model in TINY_FAMILIES:
            return "tiny-shifted", own_adapter
        if settings.model == TINY_WITH_DEFAULT_TOKENIZER:  # SmolLM2's tokenizer, so SmolLM2's mask token
            return "smollm2-block-lora", own_adapter
        if settings.model == DEFAULT_MODEL_ALIAS:
            return "smollm2-block-lora", default_adapter_path() if adapter == "default" else own_adapter
        if own_adapter is not None:
            raise ValueError(f"HYBRIDGEN_REFINER_ADAPTER={adapter!r} on the model {settings.model!r}: set "
                             "HYBRIDGEN_REFINER_FAMILY to the adapter's diffusion family (its mask token and shift)")
        return None, None
    if adapter == "default" and settings.model == DEFAULT_MODEL_ALIAS and family == "smollm2-block-lora":
        return family, default_adapter_path()
    return family, own_adapter


@dataclass(frozen=True)
class RefineSettings:
    """How the refiner writes one kind's spans (hashable: spans with equal settings share a batch)."""

    block: int
    sub: int
    threshold: float
    no_repeat: int
    drafts: int
    """> 0: draft-and-verify with this many drafts per step (output = the base model's greedy AR);
    0: the confidence-threshold decoder (commit positions at or above `threshold`)."""
    forward_budget: int | None = None
    """draft-and-verify: most tokens per forward across the batch (None: no limit)."""

    def decode_config(self) -> DecodeConfig:
        return DecodeConfig(block_size=self.block, sub_block_size=self.sub, no_repeat_ngram=self.no_repeat)

    def strategy(self) -> Strategy:
        if self.drafts:
            return Verify(drafts=self.drafts, forward_budget=self.forward_budget)
        return CommitRule("threshold", threshold=self.threshold)

    def describe(self) -> str:
        if self.drafts:
            budget = f", at most {self.forward_budget} tokens per forward" if self.forward_budget else ""
            return f"draft-and-verify, up to {self.drafts} drafts per step{budget}"
        return f"threshold {self.threshold}, block {self.block}, sub-block {self.sub}"


CPU_FORWARD_BUDGET = 9
"""The old fixed CPU budget (2 drafts, tree, for one row), kept for the benchmarks' comparison row;
the pipeline's width now comes from the measured cost table unless HYBRIDGEN_REFINER_FORWARD_BUDGET
sets a budget."""


def refine_settings(settings: Settings, kind: str, *, cuda: bool = False) -> RefineSettings:
    values = {"block": settings.refiner_block_size, "sub": settings.refiner_sub_block_size,
              "threshold": settings.refiner_threshold, "no_repeat": settings.refiner_no_repeat_ngram,
              "drafts": settings.refiner_drafts}
    values.update(parse_overrides(settings.refiner_overrides).get(kind, {}))
    block = int(values["block"])
    sub = int(values["sub"]) or block
    budget = settings.refiner_forward_budget or None  # None: the refiner's cost-table width policy
    return RefineSettings(block, sub, float(values["threshold"]), int(values["no_repeat"]), int(values["drafts"]),
                          budget)
