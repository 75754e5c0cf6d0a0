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
from typing import Any

import torch

JSON_WHITESPACE = r"[ ]?"
_index_cache: dict[tuple[int, str], Any] = {}
_vocab_cache: dict[int, Any] = {}
_lock = threading.Lock()


def _vocabulary(tokenizer) -> Any:
    from outlines.backends.outlines_core import OutlinesCoreBackend
    from outlines.models.transformers import TransformerTokenizer

    key = id(tokenizer)
    with _lock:
        if key not in _vocab_cache:
            wrapped = TransformerTokenizer(tokenizer)
            _vocab_cache[key] = OutlinesCoreBackend.create_outlines_core_vocabulary(
                tokenizer.get_vocab(), tokenizer.eos_token_id, tokenizer.eos_token, wrapped.convert_token_to_string
            )
        return _vocab_cache[key]


def regex_index(tokenizer, regex: str) -> Any:
    """The compiled outlines-core Index for a regex (cached per tokenizer and regex)."""
    from outlines_core import Index

    key = (id(tokenizer), regex)
    vocab = _vocabulary(tokenizer)
    with _lock:
        if key not in _index_cache:
            _index_cache[key] = Index(regex, vocab)
        return _index_cache[key]


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
