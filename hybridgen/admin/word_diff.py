"""A word diff between two outputs, as safe HTML: what the second version deleted and inserted.

difflib over words, with the whitespace between them kept as its own tokens so the diff reads like
the text (line breaks stay), and punctuation as tokens of its own, so that `b):` against `b)` is one
deleted colon, not two different words (it matters in code). Every piece of text is escaped; the only
markup is <del> and <ins>.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from markupsafe import Markup, escape

# Past this many words per side difflib's quadratic worst case shows in a page load; such outputs are
# degenerate anyway (a loop of one sentence), and the side-by-side view still shows them.
MAX_DIFF_WORDS = 20_000
WORD = re.compile(r"\w")
TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class WordDiff:
    html: Markup
    inserted: int
    """Words in the second text that are not in the first."""
    deleted: int
    """Words of the first text that the second drops."""
    too_long: bool = False
    changed: bool = True
    """Anything differs, punctuation and spacing included."""

    @property
    def same(self) -> bool:
        return not self.too_long and not self.changed


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def word_diff(old: str | None, new: str | None) -> WordDiff:
    a, b = tokens(old or ""), tokens(new or "")
    words_a, words_b = _words(a), _words(b)
    if max(words_a, words_b) > MAX_DIFF_WORDS:
        return WordDiff(Markup("too long to diff ({} and {} words)").format(words_a, words_b), 0, 0, too_long=True)
    # autojunk off: it treats frequent words ("the") as junk in texts over 200 tokens, which makes
    # the diff of two similar articles fall apart into large replaced blocks.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    out: list[Markup] = []
    inserted = deleted = 0
    changed = False
    for op, i1, i2, j1, j2 in _grouped(matcher.get_opcodes(), a):
        if op == "equal":
            out.append(escape("".join(a[i1:i2])))
            continue
        changed = True
        if op in ("delete", "replace"):
            out.append(_marked("del", a[i1:i2]))
            deleted += _words(a[i1:i2])
        if op in ("insert", "replace"):
            out.append(_marked("ins", b[j1:j2]))
            inserted += _words(b[j1:j2])
    return WordDiff(Markup("").join(out), inserted, deleted, changed=changed)


def _words(toks: list[str]) -> int:
    return sum(1 for t in toks if WORD.search(t))


def _grouped(opcodes: list[tuple[str, int, int, int, int]], a: list[str]) -> list[tuple[str, int, int, int, int]]:
    """Opcodes with the small islands of sameness inside a rewrite folded into it.

    Word by word, "Hot drinks for your commute" -> "Coffee that stays hot on the way" matches the
    spaces and "hot", and reads as eight alternating pairs; a reader wants one deletion and one
    insertion. An equal run of whitespace and at most one token (a word or a punctuation mark)
    between two changes becomes part of them.
    """
    out: list[tuple[str, int, int, int, int]] = []
    for k, (op, i1, i2, j1, j2) in enumerate(opcodes):
        between_changes = 0 < k < len(opcodes) - 1 and out and out[-1][0] != "equal"
        if op == "equal" and between_changes and sum(1 for t in a[i1:i2] if not t.isspace()) <= 1:
            op = "replace"
        if op != "equal" and out and out[-1][0] != "equal":
            _, p1, _, q1, _ = out.pop()
            op, i1, j1 = "replace", p1, q1
        out.append((op, i1, i2, j1, j2))
    return [(("delete" if j1 == j2 else "insert" if i1 == i2 else op) if op != "equal" else op, i1, i2, j1, j2)
            for op, i1, i2, j1, j2 in out]


def _marked(tag: str, toks: list[str]) -> Markup:
    """`toks` in <tag>, with leading and trailing whitespace left outside the mark (reads better)."""
    text = "".join(toks)
    core = text.strip()
    if not core:
        return escape(text) if tag == "ins" else Markup("")  # a whitespace-only change: keep the new spacing
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()):]
    return Markup("{}<{} class=\"diff-{}\">{}</{}>{}").format(lead, Markup(tag), Markup(tag), core, Markup(tag), trail)
