"""Turn logits into proposed tokens and their confidences (shared by the fast and reference decoders)."""

from __future__ import annotations

from dataclasses import dataclass

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

    def __post_init__(self):
        if self.block_size < 1 or self.max_new_tokens < 1:
            raise ValueError("block_size and max_new_tokens must be >= 1")
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
