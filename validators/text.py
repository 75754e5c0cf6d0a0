"""Text helpers for validators: sentences with their character offsets, words, numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Dr|Mr|Mrs|Ms|Prof|St|Mt|Jr|Sr|vs|etc|e\.g|i\.e|No|approx)\.$")
_BLOCK_LINE = re.compile(r"^\s*(?:#|[-*+] |\d+\. |```)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:[.,]\d+)*")
STOPWORDS = frozenset(
    "a an the and or but if then of to in on at by for with from as is are was were be been being it its "
    "this that these those there their they them he she his her we our you your i my me so than too very "
    "can could will would should may might must do does did has have had not no never".split()
)


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    text: str


def sentences(text: str) -> list[Sentence]:
    """Sentences with offsets into `text`. Headings, list items and fences are units of their own;
    other lines are joined into paragraphs (blank lines separate them) and split at sentence ends."""
    out: list[Sentence] = []
    para_start = None
    offset = 0
    for line in text.splitlines(keepends=True):
        is_block = bool(_BLOCK_LINE.match(line))
        if not line.strip() or is_block:
            if para_start is not None:
                _split(out, text, para_start, offset)
                para_start = None
            if is_block:
                _add(out, text, offset, offset + len(line))
        elif para_start is None:
            para_start = offset
        offset += len(line)
    if para_start is not None:
        _split(out, text, para_start, offset)
    return out


def _split(out: list[Sentence], text: str, start: int, end: int) -> None:
    pos = start
    for m in _BOUNDARY.finditer(text, start, end):
        if _ABBREVIATION.search(text, pos, m.start()):  # "Dr. Taylor": not a sentence end
            continue
        _add(out, text, pos, m.start())
        pos = m.end()
    _add(out, text, pos, end)


def _add(out: list[Sentence], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    out.append(Sentence(start + lead, start + lead + len(stripped), stripped))


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOPWORDS and not w[0].isdigit()}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
