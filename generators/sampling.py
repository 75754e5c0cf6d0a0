"""Logit transforms and token choice: small pure functions over tensors.

Sampling draws its noise from one torch.Generator per row, so a row's output depends on its own
seed only, never on which other rows share its batch (an item re-run in another chunk after a
crash produces the same text).
"""

from __future__ import annotations

import torch


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """(..., V) -> (..., V)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 for sampling; use greedy for 0")
    return logits / temperature


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability mass reaches top_p; (..., V) -> (..., V)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    # A token is dropped when the mass *before* it already reaches top_p (the top token always stays).
    drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def row_generators(seeds: list[int], device: torch.device) -> list[torch.Generator]:
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        gens.append(g)
    return gens


def choose_tokens(logits: torch.Tensor, *, temperature: float = 0.0, top_p: float = 1.0,
                  generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """Pick one token per row: greedy when temperature == 0, else seeded sampling.

    logits: (R, V) -> (R,) token ids.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    if generators is None or len(generators) != logits.shape[0]:
        raise ValueError("sampling needs one generator per row")
    scores = top_p_filter(apply_temperature(logits.float(), temperature), top_p)
    # Gumbel-max: argmax(score + Gumbel noise) samples from softmax(score); noise is per-row seeded.
    noise = torch.stack([
        torch.rand(scores.shape[-1], generator=g, device=scores.device) for g in generators
    ]).clamp_(1e-20, 1.0)
    return (scores - torch.log(-torch.log(noise))).argmax(dim=-1)
