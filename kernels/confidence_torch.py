"""Reference confidence: max probability and argmax over the vocabulary, per position."""

from __future__ import annotations

import torch

from kernels.checks import check_confidence


def confidence(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, V) -> (max_prob (N,) float32, argmax (N,) int64) of softmax(logits / temperature).

    max softmax = exp(max - logsumexp): no (N, V) probability tensor is kept, and it is stable for
    any logit magnitude.
    """
    check_confidence(logits, temperature)
    scaled = logits.float() / temperature
    top, index = scaled.max(dim=-1)
    return torch.exp(top - torch.logsumexp(scaled, dim=-1)), index


def select_confident(conf: torch.Tensor, candidates: torch.Tensor, threshold: float) -> torch.Tensor:
    """Positions to commit: candidates with conf >= threshold, and at least the best candidate per row.

    conf, candidates: (R, N) -> bool (R, N). Rows without candidates select nothing.
    """
    masked = torch.where(candidates, conf, torch.full_like(conf, -1.0))
    chosen = candidates & (conf >= threshold)
    best = masked.argmax(dim=-1, keepdim=True)  # (R, 1)
    has_any = candidates.any(dim=-1, keepdim=True)
    return chosen | (torch.zeros_like(chosen).scatter(-1, best, True) & has_any)
