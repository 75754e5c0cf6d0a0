"""Constrained AR decoding with outlines: a regex or JSON schema becomes a per-row token mask.

outlines-core compiles the regex (a JSON schema is first turned into one by outlines'
`build_regex_from_schema`) against the tokenizer's vocabulary into an Index; each row walks it with
its own Guide. `RegexConstraint` plugs into `generate_ar(logits_transform=...)`, so constrained
rows batch like any others and leave the batch when done.

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
    """Logits transform for generate_ar: each call row follows its own guide through `index`."""

    def __init__(self, indices: list[Any], eos_token_id: int):
        from outlines_core import Guide
        from outlines_core.kernels.torch import allocate_token_bitmask

        self.guides = [Guide(ix) if ix is not None else None for ix in indices]
        self._seen = [0] * len(indices)
        self._allocate = allocate_token_bitmask
        self.eos = eos_token_id

    def finished(self, row: int) -> bool:
        g = self.guides[row]
        return g is None or g.is_finished()

    def __call__(self, rows: list[int], generated: list[list[int]], logits: torch.Tensor) -> torch.Tensor:
        from outlines_core.kernels.torch import apply_token_bitmask_inplace, fill_next_token_bitmask

        logits = logits.float().clone()
        for b, (r, gen) in enumerate(zip(rows, generated)):
            guide = self.guides[r]
            if guide is None:
                continue  # this row is unconstrained
            for tok in gen[self._seen[r]:]:
                if not guide.is_finished() or guide.accepts_tokens([tok]):
                    guide.advance(token_id=tok, return_tokens=False)
            self._seen[r] = len(gen)
            if guide.is_finished():
                # the regex is complete: only EOS may follow
                logits[b] = float("-inf")
                logits[b, self.eos] = 0.0
                continue
            mask = self._allocate(logits.shape[-1])
            fill_next_token_bitmask(guide, mask)
            apply_token_bitmask_inplace(logits[b:b + 1], mask)
        return logits
