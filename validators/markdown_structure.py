"""Markdown structure: every planned heading is present, in order, with a non-empty body."""

from __future__ import annotations

import re
from dataclasses import dataclass

from validators.base import Evidence, Report, ValidationContext

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def planned_headings(context: ValidationContext) -> list[str]:
    plan = context.plan or {}
    sections = plan.get("sections") or []
    headings = [s.get("heading", "") for s in sections if isinstance(s, dict)]
    if not headings and isinstance(context.input.get("sections"), list):
        headings = list(context.input["sections"])
    return [h for h in headings if h]


@dataclass(frozen=True)
class MarkdownStructure:
    name: str = "markdown_structure"
    min_body_words: int = 5

    def check(self, text: str, context: ValidationContext) -> Report:
        found = [(m.start(), m.end(), len(m.group(1)), m.group(2)) for m in _HEADING.finditer(text)]
        expected = planned_headings(context)
        if not expected:
            ok = bool(found)
            return Report(self.name, ok, 1.0 if ok else 0.0,
                          "has headings" if ok else "no Markdown headings at all")
        problems: list[str] = []
        evidence: list[Evidence] = []
        cursor = 0
        matched = 0
        for heading in expected:
            index = next((i for i in range(cursor, len(found)) if _norm(found[i][3]) == _norm(heading)), None)
            if index is None:
                elsewhere = any(_norm(f[3]) == _norm(heading) for f in found)
                problems.append(f"heading {heading!r} {'out of order' if elsewhere else 'missing'}")
                continue
            start, end = found[index][0], found[index][1]
            body_end = found[index + 1][0] if index + 1 < len(found) else len(text)
            body = text[end:body_end].strip()
            if len(body.split()) < self.min_body_words:
                problems.append(f"section {heading!r} has an empty or too short body ({len(body.split())} words)")
                evidence.append(Evidence(start, end, text[start:end], "body too short"))
            else:
                matched += 1
            cursor = index + 1
        score = matched / len(expected)
        if problems:
            return Report(self.name, False, score, "; ".join(problems), tuple(evidence),
                          {"expected": expected, "found": [f[3] for f in found]})
        return Report(self.name, True, 1.0, f"all {len(expected)} planned headings present, in order, with bodies")
