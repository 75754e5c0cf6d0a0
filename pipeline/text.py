"""Small text helpers shared by the content kinds."""

from __future__ import annotations

import json
import re
from typing import Any

_CHAT_TOKENS = re.compile(r"<\|(?:im_start|im_end|endoftext|mask)\|>|<empty_output>")


def strip_chat_artifacts(text: str) -> str:
    """Cut the text at the first chat control token (a model that runs past its turn)."""
    m = _CHAT_TOKENS.search(text)
    return text[: m.start()] if m else text


def clean_paragraphs(text: str, drop_heading: str | None = None) -> str:
    """A span's prose: chat artifacts cut, a repeated heading or bold title line dropped, no
    Markdown headings inside (they would break the article's structure), trimmed."""
    text = strip_chat_artifacts(text).strip()
    lines = text.splitlines()
    while lines and (lines[0].lstrip().startswith("#") or _is_title_line(lines[0], drop_heading)):
        lines.pop(0)
    lines = [re.sub(r"^\s*#+\s*", "", line) for line in lines]
    return "\n".join(lines).strip()


def _is_title_line(line: str, heading: str | None) -> bool:
    bare = re.sub(r"[*_#:\"]", "", line).strip().lower()
    return bool(heading) and bare == heading.strip().lower()


SENTENCE_END = re.compile(r"[.!?][\"')\]*]*(?=\s|$)")


def complete_sentences(text: str) -> str:
    """The text up to its last sentence end, for prose that a token budget cut mid-sentence
    ("... to support the growth of"); unchanged when no sentence ends in it."""
    ends = list(SENTENCE_END.finditer(text))
    return text[:ends[-1].end()] if ends else text


def unfenced(text: str, *languages: str) -> str:
    """The text without a code fence around all of it (```markdown ... ```), trimmed."""
    text = text.strip()
    names = "|".join(map(re.escape, languages))
    fenced = re.fullmatch(rf"```(?:{names})?[ \t]*\n(.*?)\n?```", text, re.DOTALL | re.IGNORECASE)
    return fenced.group(1).strip() if fenced else text


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's reply (after any words or an opening fence), or None."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None
