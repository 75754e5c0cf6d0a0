"""Constrained AR decoding with outlines: a regex or JSON schema becomes a per-row token mask.

outlines-core compiles the regex (a JSON schema is first turned into one by outlines'
`build_regex_from_schema`) against the tokenizer's vocabulary into an Index; each row walks it with
its own Guide. `RegexConstraint` plugs into `generate_ar(constraint=...)`, so constrained rows batch
like any others, leave the batch when done, and jump forward over what the grammar forces.

Two things outlines leaves to the caller, handled here: whitespace between JSON tokens is limited
(the default pattern lets a small model loop on spaces), and the token budget is the decoder's
max_new_tokens (outlines' own generators default to 20 new tokens and ignore integer bounds).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable

import torch

from generators.grammar import mask_by_bits

JSON_WHITESPACE = r"[ ]?"
MAX_CACHED_INDEXES = 24
"""Compiled indexes kept per process, least recently used dropped first. With a 49k vocabulary one
costs up to ~150 MB, so the cache must be bounded, and the kinds keep the set of distinct plan
regexes small and fixed (a job's own text is a forced prefix, not part of its regex)."""
MAX_CACHED_VOCABULARIES = 2


class LruCache:
    """A thread-safe mapping that keeps the `limit` most recently used entries."""

    def __init__(self, limit: int):
        self.limit = limit
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            value = build()  # under the lock: two threads never compile the same index twice
            self._entries[key] = value
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
            return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_indexes = LruCache(MAX_CACHED_INDEXES)
_vocabularies = LruCache(MAX_CACHED_VOCABULARIES)


def tokenizer_key(tokenizer) -> tuple:
    """A key that names a tokenizer's vocabulary for as long as the process lives (an `id()` can be
    reused by another object once the first is freed)."""
    vocab = tokenizer.get_vocab()
    return (type(tokenizer).__name__, getattr(tokenizer, "name_or_path", ""), len(vocab),
            tokenizer.eos_token_id, hash(frozenset(vocab.items())))


def _vocabulary(tokenizer, key: tuple) -> Any:
    from outlines.backends.outlines_core import OutlinesCoreBackend
    from outlines.models.transformers import TransformerTokenizer

    def build():
        wrapped = TransformerTokenizer(tokenizer)
        return OutlinesCoreBackend.create_outlines_core_vocabulary(
            tokenizer.get_vocab(), tokenizer.eos_token_id, tokenizer.eos_token, wrapped.convert_token_to_string)

    return _vocabularies.get_or_build(key, build)


def regex_index(tokenizer, regex: str) -> Any:
    """The compiled outlines-core Index for a regex (LRU-cached per vocabulary and regex)."""
    from outlines_core import Index

    key = _tokenizer_key_cached(tokenizer)
    return _indexes.get_or_build((key, regex), lambda: Index(regex, _vocabulary(tokenizer, key)))


_tokenizer_keys: "weakref.WeakKeyDictionary[Any, tuple]" = weakref.WeakKeyDictionary()


def _tokenizer_key_cached(tokenizer) -> tuple:
    """tokenizer_key, computed once per tokenizer object (hashing a 49k vocabulary takes ~20 ms)."""
    try:
        return _tokenizer_keys[tokenizer]
    except (KeyError, TypeError):
        key = tokenizer_key(tokenizer)
        try:
            _tokenizer_keys[tokenizer] = key
        except TypeError:
            pass
        return key


def schema_regex(schema: dict) -> str:
    from outlines_core.json_schema import build_regex_from_schema

    return build_regex_from_schema(json.dumps(schema), JSON_WHITESPACE)


class RegexConstraint:
    """An engine constraint (decoding/engine.py): each call row follows its own guide through `index`.

    `restrict` masks every verified position of a step: the guide walks the row's drafts
    speculatively and rolls back, so a draft the grammar refuses is never accepted. `forced`
    drafts the grammar's only continuation (jump-forward): where every token the grammar allows is a
    prefix of the longest one (a JSON key, its quotes and colon), that longest token is drafted,
    and the model's verification keeps it only if the model picks that tokenization itself, so
    the output equals the plain constrained decode's.
    """

    def __init__(self, indices: list[Any], eos_token_id: int, tokenizer=None):
        from outlines_core import Guide
        from outlines_core.kernels.torch import allocate_token_bitmask

        self.guides = [Guide(ix, max_rollback=MAX_DRAFTS + 1) if ix is not None else None for ix in indices]
        self._seen = [0] * len(indices)
        self._allocate = allocate_token_bitmask
        self.eos = eos_token_id
        self._strings = _token_strings(tokenizer) if tokenizer is not None else None

    def finished(self, row: int) -> bool:
        g = self.guides[row]
        return g is None or g.is_finished()

    def _sync(self, row: int, out: list[int]) -> None:
        """Advance row's guide through the tokens it has not seen (the tokens after the regex ended:
        only EOS, which the guide need not see)."""
        guide = self.guides[row]
        for tok in out[self._seen[row]:]:
            if not guide.is_finished() or guide.accepts_tokens([tok]):
                guide.advance(token_id=tok, return_tokens=False)
        self._seen[row] = len(out)

    def _mask_into(self, guide, logits_row: torch.Tensor) -> None:
        """logits_row (V,): what the guide does not allow now -> -inf (in place)."""
        from outlines_core.kernels.torch import fill_next_token_bitmask

        if guide.is_finished():  # the regex is complete: only EOS may follow
            logits_row.fill_(float("-inf"))
            logits_row[self.eos] = 0.0
            return
        mask = self._allocate(logits_row.shape[-1])  # (1, ceil(V / 32)) int32, bit i of word w: token 32 w + i
        fill_next_token_bitmask(guide, mask)
        # outlines' own apply_token_bitmask_inplace is torch.compile'd: it compiled again for every new
        # logits view (0.7-0.9 s a forward on the planner's steps), so the bits are unpacked here
        mask_by_bits(logits_row, mask[0].contiguous().view(torch.uint8))

    def restrict(self, rows: list[int], outs: list[list[int]], drafts: list[list[int]],
                 logits: torch.Tensor) -> torch.Tensor:
        """logits (R, C, V): position j of batch row b follows outs[b] + drafts[b][:j]."""
        logits = logits.float().clone()
        for b, r in enumerate(rows):
            guide = self.guides[r]
            if guide is None:
                continue  # this row is unconstrained
            self._sync(r, outs[b])
            walked = 0
            for j in range(logits.shape[1]):
                self._mask_into(guide, logits[b, j])
                if j >= len(drafts[b]) or j + 1 >= logits.shape[1]:
                    break
                tok = drafts[b][j]
                if guide.is_finished() or not guide.accepts_tokens([tok]):
                    break  # the draft fails here: later positions are never used
                guide.advance(token_id=tok, return_tokens=False)
                walked += 1
            if walked:
                guide.rollback_state(walked)
        return logits

    def forced(self, row: int, out: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens of the grammar's only continuation after `out` (see the class docstring)."""
        guide = self.guides[row]
        if guide is None or self._strings is None or limit < 1:
            return []
        self._sync(row, out)
        drafted: list[int] = []
        while len(drafted) < limit and not guide.is_finished():
            tok = self._forced_token(guide)
            if tok is None:
                break
            guide.advance(token_id=tok, return_tokens=False)
            drafted.append(tok)
        if drafted:
            guide.rollback_state(len(drafted))
        return drafted

    def _forced_token(self, guide) -> int | None:
        allowed = guide.get_tokens()
        if not allowed or len(allowed) > MAX_FORCED_CHOICES or self.eos in allowed:
            return None  # free text (or the end may come): nothing is forced
        strings = self._strings
        longest = max(allowed, key=lambda t: (len(strings[t]), -t))  # ties by id: the guide's order is a set's
        top = strings[longest]
        return longest if all(top.startswith(strings[t]) for t in allowed) else None


MAX_DRAFTS = 16
"""Most tokens a step may verify past the last chosen one (the guides can roll back this far)."""
MAX_FORCED_CHOICES = 64
"""A state allowing more tokens than this is free text: drafting stops without comparing them."""

_token_string_cache: "weakref.WeakKeyDictionary[Any, list[str]]" = weakref.WeakKeyDictionary()


def _token_strings(tokenizer) -> list[str]:
    """Each token id's raw vocabulary string (byte-level, so string prefixes are byte prefixes)."""
    try:
        return _token_string_cache[tokenizer]
    except (KeyError, TypeError):
        pass
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    strings = [s or "" for s in tokenizer.convert_ids_to_tokens(list(range(size)))]
    try:
        _token_string_cache[tokenizer] = strings
    except TypeError:
        pass
    return strings
