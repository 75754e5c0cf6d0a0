"""Markdown structure: every planned heading is present, in order, with a non-empty body.

Without a plan (`plain` mode) the headings to find are the user's own, when the job lists them; when
it asks for a number of sections, the article must have that many sections (the headings one level
below its title), each with a body.
"""

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
        asked = context.input.get("sections")
        if not expected and isinstance(asked, int) and not isinstance(asked, bool):
            return self._count_sections(text, found, asked)
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

    def _count_sections(self, text: str, found: list[tuple[int, int, int, str]], asked: int) -> Report:
        """`asked` sections: the headings of the level below a leading title (any level when there is no
        title), each with a body of at least min_body_words words."""
        if not found:
            return Report(self.name, False, 0.0, f"no Markdown headings at all ({asked} sections asked for)")
        below_title = found[1:] if found[0][2] == 1 else found
        level = min((f[2] for f in below_title), default=0)
        sections = [i for i, f in enumerate(found) if f[2] == level and (i > 0 or found[0][2] != 1)]
        short = []
        for i in sections:
            end = next((f[0] for f in found[i + 1:] if f[2] <= level), len(text))
            if len(text[found[i][1]:end].split()) < self.min_body_words:
                short.append(found[i][3])
        problems = ([f"{len(sections)} sections, {asked} asked for"] if len(sections) != asked else []) + \
                   [f"section {h!r} has an empty or too short body" for h in short]
        details = {"asked": asked, "found": [found[i][3] for i in sections]}
        if problems:
            return Report(self.name, False, min(len(sections) - len(short), asked) / asked if sections else 0.0,
                          "; ".join(problems), details=details)
        return Report(self.name, True, 1.0, f"{asked} sections, as asked for, each with a body", details=details)
