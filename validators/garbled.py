"""Garbled text: word salad the reader cannot use, judged per prose part.

Signals, each a sentence-level find (docs/review-rubric.md `garbled`):
    number runs        "5.3.1.1.1.1.1", "| 2023-01 | 2023-02 |", "100000000000"
    phrase loops       "18V, 18V, 18", "for the 4, for the 5, for the 6", "Luminous Luminous"
    cut-off words      "due to cerebral bl.", "unwi-d"
    shouting           "THE HOUR MOBILE DEINA (HUMAN RIGHTS)" in running text or a heading
    template debris    "Title: #1", "| SmolLM |"
Deletion test: critical (the check fails) when at least half of a section body's or the description's
sentences are garbled; otherwise (and in a tagline or a fact) minor, listed in `details["minor"]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from validators.base import Evidence, Report, ValidationContext
from validators.prose_parts import parts_of
from validators.text import Sentence

SHORT_WORDS = frozenset("a i am an as at be by do go he if in is it me my no of oh ok on or so to up us we "
                        "tv uk us eu pc ok id ai uv dj vr ar pr hr ev".split())
SIGNALS = (
    ("number run", re.compile(r"(?:\d+[.\-/|, ]\s?){5,}|\d{9,}|(?:\|\s*[^|\n]{1,12}\s*){4,}\|")),
    ("phrase loop", re.compile(r"\b(\w+(?:\W+\w+){0,2})(?:\W+\1\b){2,}|\b(\w{3,})\s+\2\b", re.IGNORECASE)),
    ("counting loop", re.compile(r"\b(\w+ \w+) \d+,\s*\1 \d+,\s*\1 \d+", re.IGNORECASE)),
    ("cut-off word", re.compile(r"\b([a-z]{1,2})\.$|\b[a-z]{2,}-[a-z]\b")),
    ("template debris", re.compile(r"\bsmollm\b|\btitle:\s*#\d|\(\s*,\s*\w+\s*\)", re.IGNORECASE)),
)


def garbled_signal(s: Sentence) -> str | None:
    text = s.text
    letters = [c for c in text if c.isalpha()]
    if len(text.split()) >= 3 and letters and sum(c.isupper() for c in letters) / len(letters) > 0.9:
        return "shouting"
    for name, pattern in SIGNALS:
        m = pattern.search(text)
        if not m:
            continue
        if name == "cut-off word" and m.group(1) and m.group(1).lower() in SHORT_WORDS:
            continue
        return name
    return None


@dataclass(frozen=True)
class Garbled:
    name: str = "garbled"

    def check(self, text: str, context: ValidationContext) -> Report:
        critical, minor = [], []
        for part in parts_of(text, context.kind):
            found = [(s, why) for s in part.sentences if (why := garbled_signal(s))]
            if not found:
                continue
            evidence = [Evidence(s.start, s.end, s.text, f"{why} in {part.name}") for s, why in found]
            whole_part = part.is_body
            (critical if whole_part and 2 * len(found) >= len(part.sentences) else minor).extend(evidence)
        if critical:
            return Report(self.name, False, 0.0, f"garbled text ({critical[0].note}): {critical[0].text[:80]!r}",
                          tuple(critical + minor), {"minor": [e.text for e in minor]})
        return Report(self.name, True, 1.0, f"{len(minor)} garbled sentences" if minor else "no garbled text",
                      tuple(minor), {"minor": [e.text for e in minor]})
