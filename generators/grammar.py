"""A guidance / llguidance grammar as an engine constraint: the fallback's programs decode on the engine.

    GrammarConstraint(grammars, tokenizer, eos)  one Lark grammar (guidance's `ll_grammar()`) per row, or None

guidance writes the grammar (literal scaffolding, regex-bounded generations with their own token
caps); llguidance's LLMatcher walks it token by token, lazily (a matcher costs about 1 ms to build).
It gives the two things the engine's Constraint protocol asks for (decoding/engine.py):
- `restrict`: the allowed-token mask at each verified position; a row's drafts are consumed by a
  copy of its matcher (about 1 us), so a draft the grammar refuses is never kept;
- `forced`: llguidance's fast-forward tokens (the scaffolding between generations), drafted and
  verified by the model like any other, so a literal run costs one forward, not one per token.
So a fallback program is batched with the other items' and cached like every decode, instead of
running one item at a time through guidance's own HF loop.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Sequence

import torch

_BITS = torch.arange(8, dtype=torch.uint8)
_tokenizers: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def ll_tokenizer(tokenizer, eos_token_id: int):
    """llguidance's view of an HF fast tokenizer (about 0.5 s to build: one per tokenizer and EOS)."""
    import llguidance.hf

    with _lock:
        per_eos = _tokenizers.setdefault(tokenizer, {})
        if eos_token_id not in per_eos:
            per_eos[eos_token_id] = llguidance.hf.from_tokenizer(tokenizer, eos_token=eos_token_id)
        return per_eos[eos_token_id]


def mask_by_bits(logits_row: torch.Tensor, bits: torch.Tensor) -> None:
    """logits_row (V,) -> -inf where a token's bit is 0 (in place). bits (ceil(n / 8),) uint8, bit i of
    byte k for token 8k + i: llguidance's bitmask, and outlines' int32 words read as little-endian bytes.
    Tokens past the bitmask (a model vocabulary padded past its tokenizer's) are not allowed."""
    allowed = ((bits[:, None] >> _BITS) & 1).bool().reshape(-1)  # (8 * len(bits),)
    v = logits_row.shape[-1]
    if allowed.numel() < v:
        allowed = torch.cat([allowed, torch.zeros(v - allowed.numel(), dtype=torch.bool, device=allowed.device)])
    logits_row.masked_fill_(~allowed[:v].to(logits_row.device), float("-inf"))


class GrammarError(ValueError):
    """A grammar llguidance refuses, or a matcher that entered its error state."""


class GrammarConstraint:
    """Each row of a decode call follows its own LLMatcher (None: the row is unconstrained)."""

    def __init__(self, grammars: Sequence[str | None], tokenizer, eos_token_id: int):
        import llguidance

        llt = ll_tokenizer(tokenizer, eos_token_id)
        self.eos = eos_token_id
        self.matchers = []
        for k, grammar in enumerate(grammars):
            if grammar is None:
                self.matchers.append(None)
                continue
            m = llguidance.LLMatcher(llt, grammar, log_level=0)
            if m.is_error():
                raise GrammarError(f"grammar of row {k}: {m.get_error()}")
            self.matchers.append(m)
        self._seen = [0] * len(grammars)

    def _sync(self, row: int, out: list[int]) -> None:
        """Consume the row's tokens the matcher has not seen (EOS after a complete grammar included)."""
        m = self.matchers[row]
        new = out[self._seen[row]:]
        if new and not m.consume_tokens(new):
            raise GrammarError(f"row {row}: the decoder kept a token the grammar refuses: {m.get_error()}")
        self._seen[row] = len(out)

    def _mask_into(self, m, logits_row: torch.Tensor) -> None:
        """logits_row (V,): tokens the matcher does not allow now -> -inf (in place)."""
        mask_by_bits(logits_row, torch.frombuffer(bytearray(m.compute_bitmask()), dtype=torch.uint8))

    def restrict(self, rows: list[int], outs: list[list[int]], drafts: list[list[int]],
                 logits: torch.Tensor) -> torch.Tensor:
        """logits (R, C, V): position j of batch row b follows outs[b] + drafts[b][:j]."""
        logits = logits.float().clone()
        for b, r in enumerate(rows):
            m = self.matchers[r]
            if m is None:
                continue
            self._sync(r, outs[b])
            walk = m.deep_copy() if drafts[b] else m  # a copy, not a rollback: llguidance cannot roll back
            for j in range(logits.shape[1]):      # through a generation with a token cap (max_tokens)
                self._mask_into(walk, logits[b, j])
                if j >= len(drafts[b]) or j + 1 >= logits.shape[1]:
                    break
                if walk.try_consume_tokens([drafts[b][j]]) != 1:
                    break  # the draft fails here: later positions are never used
        return logits

    def forced(self, row: int, out: list[int], limit: int) -> list[int]:
        """Up to `limit` of the grammar's fast-forward tokens after `out`."""
        m = self.matchers[row]
        if m is None or limit < 1:
            return []
        self._sync(row, out)
        if m.is_stopped():
            return []
        return list(m.compute_ff_tokens())[:limit]
