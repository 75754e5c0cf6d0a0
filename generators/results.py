"""Per-row decode results, shared by the AR and diffusion decoders so the two compare directly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RowResult:
    token_ids: list[int]
    """Generated tokens, without the EOS and anything after it."""
    forward_passes: int
    """Model forwards this row took part in (the prompt prefill included)."""
    wall_s: float
    """Seconds from the start of the call until this row finished."""
    finish_reason: str
    """'eos', 'length' (hit max_new_tokens) or 'stop' (a stop sequence)."""
    text: str = ""

    @property
    def generated_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def tokens_per_forward(self) -> float:
        return self.generated_tokens / self.forward_passes if self.forward_passes else 0.0

    def counters(self) -> dict:
        return {
            "generated_tokens": self.generated_tokens,
            "forward_passes": self.forward_passes,
            "tokens_per_forward": round(self.tokens_per_forward, 4),
            "wall_s": round(self.wall_s, 4),
            "finish_reason": self.finish_reason,
        }
