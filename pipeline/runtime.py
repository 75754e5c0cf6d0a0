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
        """The block-diffusion refiner: the planner's weights with the adapter merged in, packed."""
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

    def refine_settings(self, kind: str) -> tuple[int, int, float, int]:
        """(block size, sub-block size, threshold, no-repeat n-gram length) for a kind's spans."""
        return refine_settings(self.settings, kind)


def refiner_family_and_adapter(settings: Settings, planner: LoadedModel):
    from generators.shipped import default_adapter_path
    from generators.tiny import TINY_FAMILIES

    if settings.model in TINY_FAMILIES:
        return "tiny-shifted", None if settings.refiner_adapter in ("default", "none") else settings.refiner_adapter
    if settings.refiner_adapter == "none":
        return "smollm2-block-lora", None
    if settings.refiner_adapter == "default":
        return "smollm2-block-lora", default_adapter_path()
    return "smollm2-block-lora", settings.refiner_adapter


def refine_settings(settings: Settings, kind: str) -> tuple[int, int, float, int]:
    values = {"block": settings.refiner_block_size, "sub": settings.refiner_sub_block_size,
              "threshold": settings.refiner_threshold, "no_repeat": settings.refiner_no_repeat_ngram}
    values.update(parse_overrides(settings.refiner_overrides).get(kind, {}))
    block = int(values["block"])
    sub = int(values["sub"]) or block
    return block, sub, float(values["threshold"]), int(values["no_repeat"])


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
            if key.strip() not in {"block", "sub", "threshold", "no_repeat"}:
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: unknown key {key.strip()!r} "
                                 "(block, sub, threshold, no_repeat)")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: {assignment!r} needs a number") from None
            if key.strip() == "no_repeat" and not (number == 0 or (number >= 2 and number.is_integer())):
                raise ValueError(f"HYBRIDGEN_REFINER_OVERRIDES: {kind.strip()} no_repeat={value.strip()} must be 0 "
                                 "(off) or an n-gram length >= 2")
            out.setdefault(kind.strip(), {})[key.strip()] = number
    return out
