"""How the refiner decodes a span: `Strategy = CommitRule | Verify`, each validated once.

CommitRule (block decoding) names a selector below; Verify (draft-and-verify) carries the drafting
settings and commits only what the model's causal pass agrees with, so it has no selector.

The selectors: which masked positions to commit this step. Plain functions over tensors.

Every strategy takes
    conf        (R, N) float   confidence of the proposed token at each position
    candidates  (R, N) bool    positions that may be committed now (masked, inside the window)
and returns a bool (R, N) mask of positions to commit. Every row with a candidate commits at
least its most confident one, so decoding can never stall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from kernels.confidence_torch import select_confident

Selector = Callable[..., torch.Tensor]


def at_least_best(chosen: torch.Tensor, conf: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Add each row's most confident candidate to `chosen` (no-op for rows without candidates)."""
    return select_confident(conf, candidates, threshold=math.inf) | chosen


def threshold_select(conf: torch.Tensor, candidates: torch.Tensor, *, threshold: float, force: bool = True,
                     **_) -> torch.Tensor:
    """Commit every candidate with confidence >= threshold (Fast-dLLM's τ), at least one per row."""
    if not force:
        return candidates & (conf >= threshold)
    return select_confident(conf, candidates, threshold)


def factor_select(conf: torch.Tensor, candidates: torch.Tensor, *, factor: float, force: bool = True,
                  **_) -> torch.Tensor:
    """Fast-dLLM's factor rule: with candidate confidences sorted c1 >= c2 >= ..., commit the top n
    for the largest n with (n + 1) * (1 - c_n) < factor (at least one)."""
    masked = torch.where(candidates, conf, torch.full_like(conf, -1.0))
    sorted_conf, order = masked.sort(dim=-1, descending=True)  # (R, N)
    n = torch.arange(1, conf.shape[-1] + 1, device=conf.device, dtype=conf.dtype)  # (N,)
    ok = ((n + 1) * (1 - sorted_conf) < factor) & (sorted_conf >= 0)
    # largest n such that the rule holds for n: count of leading positions... the rule need not be
    # monotone, so take the largest index where it holds.
    idx = torch.where(ok, n, torch.zeros_like(n)).amax(dim=-1).long()  # (R,) chosen count
    take_sorted = torch.arange(conf.shape[-1], device=conf.device)[None, :] < idx[:, None]
    chosen = torch.zeros_like(candidates).scatter(-1, order, take_sorted) & candidates
    return at_least_best(chosen, conf, candidates) if force else chosen


def fixed_k_select(conf: torch.Tensor, candidates: torch.Tensor, *, steps_left: int, **_) -> torch.Tensor:
    """LLaDA's low-confidence remasking with a fixed step budget: commit the ceil(m / steps_left)
    most confident of the m candidates, so the window finishes in exactly `steps_left` steps."""
    m = candidates.sum(dim=-1)  # (R,)
    k = torch.ceil(m.float() / max(1, steps_left)).long().clamp(min=1)  # (R,)
    masked = torch.where(candidates, conf, torch.full_like(conf, -1.0))
    order = masked.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(conf.shape[-1], device=conf.device).expand_as(order))
    return (rank < k[:, None]) & candidates


@dataclass(frozen=True)
class CommitRule:
    """Block decoding (block_decoder.py): which masked positions of a block commit each step."""

    name: str = "threshold"
    threshold: float = 0.9
    """threshold: commit every position at or above it (Fast-dLLM's τ)."""
    factor: float = 1.0
    """factor: Fast-dLLM's factor rule."""
    steps_per_block: int | None = None
    """fixed_k: forward steps per block (default: one token per step)."""
    verifies = False

    def __post_init__(self):
        if self.name not in SELECTORS:
            raise ValueError(f"unknown commit rule {self.name!r}; expected one of {sorted(SELECTORS)} "
                             f"(draft-and-verify is Verify(...), not a commit rule)")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.factor <= 0:
            raise ValueError(f"factor must be > 0, got {self.factor}")
        if self.steps_per_block is not None and self.steps_per_block < 1:
            raise ValueError(f"steps_per_block must be >= 1 (or None), got {self.steps_per_block}")

    def select(self, conf: torch.Tensor, candidates: torch.Tensor, steps_left: int = 1,
               force: bool = True) -> torch.Tensor:
        """force=False: this forward already committed a token (a shifted family's first token of the
        block), so the never-stall rule is met and only confident positions are taken."""
        return SELECTORS[self.name](conf, candidates, threshold=self.threshold, factor=self.factor,
                                    steps_left=steps_left, force=force)


VERIFY = "verify"
"""Not a selector: drafts are committed only when the model's own causal pass agrees (verify.py)."""

SELECTORS: dict[str, Selector] = {
    "threshold": threshold_select,
    "factor": factor_select,
    "fixed_k": fixed_k_select,
}


@dataclass(frozen=True)
class Verify:
    """Draft-and-verify decoding (verify.py): drafts checked by the model's own causal pass."""

    drafts: int = 3
    """Tokens drafted per step, each kept only where the model's causal pass agrees."""
    draft_tree: bool = True
    """One draft block per possible acceptance length, so a rejection costs no drafts."""
    verify_on_base: bool = True
    """The adapter drafts, the base weights verify: the output is the base model's greedy."""
    forward_budget: int | None = None
    """Most tokens one forward may hold across the batch (None: the width policy decides); see verify.py."""
    name = VERIFY
    verifies = True

    def __post_init__(self):
        if self.drafts < 1:
            raise ValueError(f"drafts must be >= 1, got {self.drafts}")
        if self.forward_budget is not None and self.forward_budget < 1:
            raise ValueError(f"forward_budget must be >= 1 (or None: no limit), got {self.forward_budget}")


Strategy = CommitRule | Verify
"""How the refiner decodes a span: a block commit rule, or draft-and-verify. Each validates itself once."""
