"""Batched autoregressive decoding: the engine's loop with no drafts but the grammar's.

The planner, the AR spans, the sampled retries and the AR fallback all decode through here, on
the engine (decoding/engine.py): packed weights, one row cache, finished rows leaving the batch
at once. Under a constraint the grammar's forced runs are drafted and verified (jump-forward),
so a plan's JSON punctuation costs one forward, not one per token; the output is the same.
`decoding.reference_ar.generate_ar_reference` is the slow twin it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from generators.decoding.engine import Constraint, Sampling, WidthPolicy, decode
from generators.decoding.lookup import PromptLookup
from generators.decoding.widths import budget_width
from generators.decoding.rows import StopChecker
from generators.results import RowResult


# (row indices in the call, tokens generated so far per row, logits (R, V)) -> logits (R, V).
LogitsTransform = Callable[[list[int], list[list[int]], torch.Tensor], torch.Tensor]


class PerPosition:
    """A plain logits transform as an engine constraint: applied at every verified position, with
    that position's prefix; it forces nothing (so it drafts nothing)."""

    def __init__(self, transform: LogitsTransform):
        self.transform = transform

    def forced(self, row: int, out: list[int], limit: int) -> list[int]:
        return []

    def restrict(self, rows, outs, drafts, logits: torch.Tensor) -> torch.Tensor:
        columns = [self.transform(rows, [o + d[:j] for o, d in zip(outs, drafts)], logits[:, j])
                   for j in range(logits.shape[1])]  # each (R, V)
        return torch.stack(columns, dim=1)


def one_position(constraint: Constraint) -> LogitsTransform:
    """An engine constraint as a plain one-position transform (R, V) -> (R, V): what the slow reference
    decoder (`reference_ar.generate_ar_reference(logits_transform=...)`) applies at each token."""
    def transform(rows: list[int], generated: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
        return constraint.restrict(rows, generated, [[] for _ in rows], logits[:, None])[:, 0]
    return transform


@dataclass(frozen=True)
class ARConfig:
    max_new_tokens: int = 256
    """Hard cap on new tokens per row."""
    temperature: float = 0.0
    """0 means greedy."""
    top_p: float = 1.0
    """Nucleus mass when sampling."""


def generate_ar(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    eos_token_ids: Sequence[int],
    pad_token_id: int,
    config: ARConfig = ARConfig(),
    seeds: Sequence[int] | None = None,
    max_new_tokens: Sequence[int] | None = None,
    stop_checker: StopChecker | None = None,
    constraint: Constraint | None = None,
    logits_transform: LogitsTransform | None = None,
    lookup: PromptLookup | None = None,
    width: WidthPolicy | None = None,
) -> list[RowResult]:
    """Decode a continuation for every prompt. model: a BlockModel (a LoadedModel's `engine`) or an
    HF causal LM. Returns one RowResult per prompt, in order. `lookup` drafts prompt-lookup copies
    (verified, so the output is the same), as many per step as `width` allows."""
    if logits_transform is not None:
        if constraint is not None:
            raise ValueError("give a constraint or a logits_transform, not both")
        constraint = PerPosition(logits_transform)
    caps = list(max_new_tokens) if max_new_tokens is not None else [config.max_new_tokens] * len(prompts)
    return decode(model, prompts, eos_token_ids=eos_token_ids, pad_token_id=pad_token_id,
                  sampling=Sampling(config.temperature, config.top_p), max_new_tokens=caps, seeds=seeds,
                  stop_checker=stop_checker, constraint=constraint, lookup=lookup,
                  width=width or budget_width(None))

