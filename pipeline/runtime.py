"""Per-process runtime: the loaded models and this process's worker identity.

Models load lazily on first use, once per process. A Celery prefork worker builds its Runtime in
the child after fork (never in the parent), so each child owns its weights and its DB pool.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from generators.diffusion.proposals import DecodeConfig
from generators.diffusion.strategies import Strategy
from generators.loading import LoadedModel, load_model
from pipeline.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _planner: LoadedModel | None = field(default=None, init=False, repr=False)
    _refiner: Any = field(default=None, init=False, repr=False)
    _guidance: Any = field(default=None, init=False, repr=False)
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
            return self._planner

    @property
    def refiner(self):
        """The block-diffusion refiner: the planner's weights packed, with the adapter's factors beside them."""
        with self._lock:
            if self._refiner is None:
                from generators.refiner import load_refiner

                family, adapter = refiner_family_and_adapter(self.settings, self.planner)
                self._refiner = load_refiner(self.planner, family=family, adapter=adapter)
            return self._refiner

    @property
    def guidance_model(self):
        with self._lock:
            if self._guidance is None:
                import logging
                import warnings

                import guidance

                lm = self.planner
                # guidance cannot parse SmolLM2's chat template and says so at length; hybridgen
                # formats chat prompts itself (pipeline/fallback.py), so the template is never used.
                logging.getLogger("guidance.metrics._metrics").setLevel(logging.ERROR)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    self._guidance = guidance.models.Transformers(lm.model, lm.tokenizer, echo=False)
            return self._guidance

    def refine_settings(self, kind: str) -> RefineSettings:
        """How the refiner writes this kind's spans (decoder, block sizes, threshold, no-repeat rule)."""
        return refine_settings(self.settings, kind, cuda=self.planner.device.type == "cuda")


def refiner_family_and_adapter(settings: Settings, planner: LoadedModel):
    from generators.shipped import default_adapter_path
    from generators.tiny import TINY_FAMILIES, TINY_WITH_DEFAULT_TOKENIZER

    if settings.model == TINY_WITH_DEFAULT_TOKENIZER:  # SmolLM2's tokenizer, so SmolLM2's mask token
        return "smollm2-block-lora", None if settings.refiner_adapter in ("default", "none") else settings.refiner_adapter
    if settings.model in TINY_FAMILIES:
        return "tiny-shifted", None if settings.refiner_adapter in ("default", "none") else settings.refiner_adapter
    if settings.refiner_adapter == "none":
        return "smollm2-block-lora", None
    if settings.refiner_adapter == "default":
        return "smollm2-block-lora", default_adapter_path()
    return "smollm2-block-lora", settings.refiner_adapter


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
            return Strategy("verify", drafts=self.drafts, forward_budget=self.forward_budget)
        return Strategy("threshold", threshold=self.threshold)

    def describe(self) -> str:
        if self.drafts:
            budget = f", at most {self.forward_budget} tokens per forward" if self.forward_budget else ""
            return f"draft-and-verify, up to {self.drafts} drafts per step{budget}"
        return f"threshold {self.threshold}, block {self.block}, sub-block {self.sub}"


CPU_FORWARD_BUDGET, GPU_FORWARD_BUDGET = 9, 4096
"""Auto forward budgets. On the 2-core CPU measured (docs/benchmarks.md) a forward of 4-16 tokens
costs about 1.7x one of a single token, so drafting pays only for the last live row (9 tokens:
2 drafts, tree); a GPU's forward costs about the same up to thousands of tokens."""


def refine_settings(settings: Settings, kind: str, *, cuda: bool = False) -> RefineSettings:
    values = {"block": settings.refiner_block_size, "sub": settings.refiner_sub_block_size,
              "threshold": settings.refiner_threshold, "no_repeat": settings.refiner_no_repeat_ngram,
              "drafts": settings.refiner_drafts}
    values.update(parse_overrides(settings.refiner_overrides).get(kind, {}))
    block = int(values["block"])
    sub = int(values["sub"]) or block
    budget = settings.refiner_forward_budget or (GPU_FORWARD_BUDGET if cuda else CPU_FORWARD_BUDGET)
    return RefineSettings(block, sub, float(values["threshold"]), int(values["no_repeat"]), int(values["drafts"]),
                          budget)


OVERRIDE_KEYS = ("block", "sub", "threshold", "no_repeat", "drafts")


@lru_cache(maxsize=8)
def parse_overrides(text: str) -> dict[str, dict[str, float]]:
    """'code:threshold=0.95,block=4;article:threshold=0.85' -> {'code': {...}, 'article': {...}}."""
    out: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kind, _, assignments = part.partition(":")
        if kind.strip() not in {"article", "product", "code"} or not assignments:
            raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: {part!r} should look like 'code:threshold=0.95,block=4'")
        for assignment in assignments.split(","):
            key, _, value = assignment.partition("=")
            if key.strip() not in OVERRIDE_KEYS:
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: unknown key {key.strip()!r} "
                                 f"({', '.join(OVERRIDE_KEYS)})")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: {assignment!r} needs a number") from None
            if key.strip() == "no_repeat" and not (number == 0 or (number >= 2 and number.is_integer())):
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} no_repeat={value.strip()} must be 0 "
                                 "(off) or an n-gram length >= 2")
            if key.strip() == "drafts" and not (0 <= number <= 16 and number.is_integer()):
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} drafts={value.strip()} must be an "
                                 "integer from 0 (the threshold decoder) to 16")
            out.setdefault(kind.strip(), {})[key.strip()] = number
    return out
