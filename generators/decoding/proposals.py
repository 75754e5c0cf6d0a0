"""Turn logits into proposed tokens and their confidences (shared by the fast and reference decoders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from generators.sampling import apply_temperature, top_p_filter
from kernels import registry


@dataclass(frozen=True)
class DecodeConfig:
    """Settings common to the diffusion decoders."""

    block_size: int = 4
    """Tokens per block: the unit committed to the block-level KV cache."""
    sub_block_size: int | None = None
    """Tokens per sub-block: positions decoded together inside a block (default: the block)."""
    max_new_tokens: int = 256
    """Hard cap on new tokens per row."""
    temperature: float = 0.0
    """0 means greedy; otherwise seeded sampling per row."""
    top_p: float = 1.0
    sub_block_cache: bool = True
    """Reuse the block's K/V outside the active sub-block (approximate, as Fast-dLLM v2); False is exact."""
    no_repeat_ngram: int = 0
    """n > 1: never propose a token that repeats an n-gram already committed in the row's output (0: off)."""

    def __post_init__(self):
        if self.block_size < 1 or self.max_new_tokens < 1:
            raise ValueError("block_size and max_new_tokens must be >= 1")
        if self.no_repeat_ngram < 0 or self.no_repeat_ngram == 1:
            raise ValueError(f"no_repeat_ngram must be 0 (off) or >= 2, got {self.no_repeat_ngram}")
        if self.block_size % self.sub:
            raise ValueError(f"sub_block_size {self.sub} must divide block_size {self.block_size}")

    @property
    def sub(self) -> int:
        return self.sub_block_size or self.block_size

    @property
    def windows(self) -> int:
        return self.block_size // self.sub


def propose(logits: torch.Tensor, temperature: float, top_p: float,
            generators: list[torch.Generator] | None, draw: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (R, N, V) -> tokens (R, N), confidence (R, N).

    Greedy: argmax and its probability (through the kernel registry: fused on CUDA).
    Sampling: one Gumbel-max draw per position from each row's own generator, and the
    probability of the drawn token. `draw` (R,) bool says which rows draw noise this step;
    rows that commit nothing now must not consume their generator, so that a row's output never
    depends on which rows share its batch.
    """
    r, n, v = logits.shape
    if temperature <= 0:
        conf, tokens = registry.confidence(logits.reshape(r * n, v))
        return tokens.view(r, n), conf.view(r, n)
    scores = top_p_filter(apply_temperature(logits.float(), temperature), top_p)  # (R, N, V)
    probs = scores.softmax(dim=-1)
    noise = torch.ones_like(scores)
    for i, g in enumerate(generators or []):
        if draw is None or bool(draw[i]):
            noise[i] = torch.rand((n, v), generator=g, device=scores.device)
    gumbel = -torch.log(-torch.log(noise.clamp_(1e-20, 1.0 - 1e-7)))
    tokens = (scores + gumbel).argmax(dim=-1)  # (R, N)
    return tokens, probs.gather(-1, tokens[..., None])[..., 0]


def ban_repeated_ngrams(logits: torch.Tensor, x: torch.Tensor, committed: torch.Tensor, start: int, lo: int,
                        n: int) -> torch.Tensor:
    """Set to -inf the logits of tokens that would repeat a committed n-gram of the output.

    logits (R, b, V) for positions lo..lo+b-1; x, committed (R, W); the output starts at `start`.
    Position q may not take token t when some n-gram through q (q at any of its n places) has its
    other n-1 tokens committed and would then equal an n-gram already committed. Diffusion commits
    out of order, so the context can lie right of q too. The small refiner loops ("sentence
    repeated 9 times") where AR greedy does not; this is the AR world's no_repeat_ngram_size, applied
    to what the diffusion commits.
    """
    r, b, v = logits.shape
    out, out_known = x[:, start:], committed[:, start:]  # (R, G)
    if out.shape[1] < n:
        return logits
    grams = out.unfold(1, n, 1)  # (R, M, n)
    grams_known = out_known.unfold(1, n, 1).all(-1)  # (R, M)
    w = x.shape[1]
    q = torch.arange(lo, lo + b, device=x.device)  # (b,)
    hits = None  # (R, b, V) counts, made at the first match: most steps of most rows have none
    for j in range(n):  # q is place j of the n-gram [q-j, q-j+n)
        at = q[:, None] - j + torch.arange(n, device=x.device)[None, :]  # (b, n) absolute positions
        inside = ((at >= start) & (at < w)).all(-1)  # (b,)
        idx = at.clamp(start, w - 1)
        ctx, ctx_known = x[:, idx], committed[:, idx]  # (R, b, n)
        others = [k for k in range(n) if k != j]
        ctx_ok = ctx_known[..., others].all(-1) & inside[None]  # (R, b)
        match = ((grams[:, None, :, others] == ctx[:, :, None, others]).all(-1)
                 & grams_known[:, None, :] & ctx_ok[:, :, None])  # (R, b, M)
        if bool(match.any()):
            hits = torch.zeros((r, b, v), device=x.device) if hits is None else hits
            hits.scatter_add_(2, grams[..., j][:, None, :].expand(r, b, -1), match.float())
    return logits if hits is None else logits.masked_fill(hits > 0, float("-inf"))


def repeats_ngram_at(x: torch.Tensor, known: torch.Tensor, start: int, q: int, n: int) -> torch.Tensor:
    """(R,) bool: some n-gram through position q (ending at q .. q+n-1) is known throughout and equals
    another known n-gram of the output (which starts at `start`). x, known (R, W).

    Diffusion commits out of order, so a token can complete an n-gram to its right as well as the one
    ending at it; both are checked."""
    r, w = x.shape
    out, out_known = x[:, start:], known[:, start:]  # (R, G)
    if out.shape[1] < n:
        return torch.zeros(r, dtype=torch.bool, device=x.device)
    grams, grams_known = out.unfold(1, n, 1), out_known.unfold(1, n, 1).all(-1)  # (R, M, n), (R, M)
    first = max(0, q - start - n + 1)
    last = min(grams.shape[1] - 1, q - start)  # grams starting in [first, last] contain q
    found = torch.zeros(r, dtype=torch.bool, device=x.device)
    for m in range(first, last + 1):
        same = (grams == grams[:, m:m + 1]).all(-1) & grams_known  # (R, M)
        same[:, m] = False
        found |= grams_known[:, m] & same.any(-1)
    return found


def banned_next_tokens(seq: Sequence[int], n: int) -> list[int]:
    """Tokens t such that seq + [t] would end with an n-gram already in seq (n >= 2)."""
    if n < 2 or len(seq) < n - 1:
        return []
    key = list(seq[len(seq) - n + 1:])
    return [seq[i + n - 1] for i in range(len(seq) - n + 1) if list(seq[i:i + n - 1]) == key]
