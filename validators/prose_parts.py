"""The parts of a deliverable that a reviewer judges as prose, with offsets into the delivered text.

    article  one part per `## ` section: its heading, and its body's sentences
    product  the record's `tagline` and `description` (and each of `facts`), located in the JSON text

The rubric's deletion test (docs/review-rubric.md §2) is asked of a part: delete every bad sentence
of it; is a complete sentence left? A part's sentences carry offsets into the whole output, so the
evidence highlights the right place in what the reviewer sees.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from validators.text import Sentence, sentences

HEADING = re.compile(r"^(#{1,6})[ \t]*(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Part:
    name: str
    """"section 2: Brewing", "description", "tagline", "facts[1]"."""
    heading: str
    sentences: tuple[Sentence, ...]

    @property
    def is_body(self) -> bool:
        """A section body or the description: the parts the deletion tests judge as a whole."""
        return self.name == "description" or self.name.startswith(("section", "text"))


def article_parts(text: str) -> list[Part]:
    heads = [m for m in HEADING.finditer(text) if len(m.group(1)) == 2]
    parts = []
    for n, m in enumerate(heads):
        end = heads[n + 1].start() if n + 1 < len(heads) else len(text)
        body = [s for s in sentences(text[m.end():end]) if not s.text.startswith("#")]
        parts.append(Part(f"section {n + 1}: {m.group(2).strip()[:60]}", m.group(2).strip(),
                          tuple(Sentence(s.start + m.end(), s.end + m.end(), s.text) for s in body)))
    if not heads:  # no sections (plain replies, broken plans): the whole text is one part
        parts.append(Part("text", "", tuple(s for s in sentences(text) if not s.text.startswith("#"))))
    return parts


STRING_FIELD = re.compile(r'"(title|tagline|description)"\s*:\s*"((?:[^"\\]|\\.)*)"?')


def product_parts(text: str) -> list[Part]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        record = salvaged_fields(text)
    if not isinstance(record, dict):
        return []
    parts = []
    fields = [("tagline", record.get("tagline")), ("description", record.get("description"))]
    fields += [(f"facts[{i}]", f) for i, f in enumerate(record.get("facts") or []) if isinstance(record.get("facts"), list)]
    for name, value in fields:
        if not isinstance(value, str) or not value.strip():
            continue
        at = locate(text, value)
        found = [Sentence(s.start + at, s.end + at, s.text) for s in sentences(value)] if at >= 0 else []
        if at >= 0 and not found:
            found = [Sentence(at, at + len(value), value)]
        parts.append(Part(name, str(record.get("title", "")), tuple(found)))
    return parts


def salvaged_fields(text: str) -> dict[str, str]:
    """The first title, tagline and description string of a record that does not parse (cut off, or
    looping): a reviewer still reads them, so the prose checks should too."""
    out: dict[str, str] = {}
    for m in STRING_FIELD.finditer(text):
        try:
            value = json.loads(f'"{m.group(2)}"')
        except json.JSONDecodeError:
            value = m.group(2)
        out.setdefault(m.group(1), value)
    return out


def locate(text: str, value: str) -> int:
    """Where `value` starts in the JSON text `text` (as written, or JSON-escaped), or -1.

    When it had to be escaped its sentences' offsets are approximate; evidence text stays exact."""
    at = text.find(value)
    if at >= 0:
        return at
    encoded = json.dumps(value, ensure_ascii=False)[1:-1]
    return text.find(encoded)


@lru_cache(maxsize=16)
def parts_of(text: str, kind: str) -> tuple[Part, ...]:
    """The parts of one output, split once for all the validators that judge it (they run one after
    another on the same text)."""
    return tuple(article_parts(text) if kind == "article" else product_parts(text) if kind == "product" else [])


def is_sentence(s: Sentence) -> bool:
    """A complete sentence worth keeping: four words or more, ending in sentence punctuation."""
    return len(s.text.split()) >= 4 and bool(re.search(r"[.!?][\"')\]]*$", s.text))
