"""Prompt-lookup drafts: tokens copied from the row's own context, where its last n tokens occurred before.

    PromptLookup(most=8, longest_ngram=3, shortest_ngram=2)      the setting (frozen, validated once)
    LookupIndex(lookup, contexts).draft(row, out, limit) -> [tokens]

Generated text restates its context: a product record repeats the attribute values, a function the
names and expressions of its prompt, an article section its heading and the plan's words. When the
row's last n tokens (n = longest .. shortest) appeared earlier in prompt + output, the tokens that
followed them there are a draft. The engine verifies drafts like any other (engine.py), so they only
decide how many tokens a forward yields, never which: the output stays the model's own decode.

Per row the index maps each n-gram to the end of its latest occurrence, and grows with the output
(each token is indexed once), so a step's lookup is a dict probe per n, not a scan of the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class PromptLookup:
    most: int = 8
    """Most drafts one step takes from a match (the engine's width policy may take fewer)."""
    longest_ngram: int = 3
    shortest_ngram: int = 2

    def __post_init__(self):
        if self.most < 1:
            raise ValueError(f"prompt lookup: most must be >= 1 draft, got {self.most}")
        if not 1 <= self.shortest_ngram <= self.longest_ngram:
            raise ValueError(f"prompt lookup: n-gram sizes must satisfy 1 <= shortest ({self.shortest_ngram}) "
                             f"<= longest ({self.longest_ngram})")


class LookupIndex:
    """The n-gram index of each row's context plus output (rows are the decode call's prompt indices)."""

    def __init__(self, lookup: PromptLookup, contexts: Sequence[Sequence[int]]):
        self.lookup = lookup
        self._seq = [list(c) for c in contexts]
        self._prompt_len = [len(c) for c in contexts]
        self._ends: list[dict[tuple[int, ...], int]] = [{} for _ in contexts]
        self._indexed = [0] * len(contexts)  # n-grams ending at positions < this are in the index

    def draft(self, row: int, out: Sequence[int], limit: int) -> list[int]:
        """Up to `limit` tokens that followed the latest earlier occurrence of the row's last n tokens."""
        if limit < 1:
            return []
        seq = self._extend(row, out)
        ends = self._ends[row]
        for n in range(self.lookup.longest_ngram, self.lookup.shortest_ngram - 1, -1):
            if len(seq) <= n:
                continue
            end = ends.get(tuple(seq[-n:]))
            if end is not None:
                return seq[end:end + min(limit, self.lookup.most)]
        return []

    def _extend(self, row: int, out: Sequence[int]) -> list[int]:
        """Bring the row's sequence up to prompt + out, and index every n-gram that ends before its
        last token (the last n tokens are the query, so they must not find themselves)."""
        seq, p = self._seq[row], self._prompt_len[row]
        known = len(seq) - p
        if len(out) < known or (known and out[known - 1] != seq[-1]):
            raise ValueError(f"prompt lookup: row {row}'s output was rewritten, not extended")
        seq.extend(out[known:])
        ends, lo, hi = self._ends[row], self.lookup.shortest_ngram, self.lookup.longest_ngram
        for end in range(max(self._indexed[row], lo), len(seq)):  # the n-grams seq[end - n:end]
            for n in range(lo, min(hi, end) + 1):
                ends[tuple(seq[end - n:end])] = end
        self._indexed[row] = max(self._indexed[row], len(seq))
        return seq
