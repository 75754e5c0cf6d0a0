"""`article`: JSON outline (title; 2-6 sections with heading and key points) -> section bodies -> Markdown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.kinds.base import Fallback, PlainReply, PlanRequest, Prompt, Span
from pipeline.text import clean_paragraphs, strip_chat_artifacts, unfenced

TITLE = {"type": "string", "minLength": 3, "maxLength": 70}
POINT = {"type": "string", "minLength": 3, "maxLength": 70}
HEADING = {"type": "string", "minLength": 3, "maxLength": 50}
MAX_HEADING_CHARS = HEADING["maxLength"]
LEADING_NUMBER = re.compile(r"^\s*\d+\s*[.):]\s*")
"""A point's own numbering ("1. Use a bin"), dropped when the point becomes a heading."""


def section_count(job_input: dict[str, Any]) -> int:
    s = job_input.get("sections", 4)
    return len(s) if isinstance(s, list) else int(s)


def given_headings(job_input: dict[str, Any]) -> list[str] | None:
    s = job_input.get("sections")
    return list(s) if isinstance(s, list) else None


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@dataclass(frozen=True)
class Article:
    name: str = "article"
    schema: dict | None = None
    span_tokens: int = 140

    def plan_request(self, job_input: dict[str, Any]) -> PlanRequest:
        n = section_count(job_input)
        headings = given_headings(job_input)
        topic, audience = job_input["topic"], job_input["audience"]
        if headings:
            # The headings are given: the planner only writes the title and each section's points.
            schema = {"type": "object", "properties": {
                "title": TITLE,
                "points": {"type": "array", "minItems": n, "maxItems": n,
                           "items": {"type": "array", "items": POINT, "minItems": 1, "maxItems": 2}}},
                "required": ["title", "points"], "additionalProperties": False}
            user = (f"Plan an article about {topic} for {audience} with these sections, in order: "
                    f"{'; '.join(headings)}. Reply with JSON: a title, and for each section one or two key "
                    "points (short phrases).")
            return PlanRequest(Prompt(user), schema, 40 + 45 * n)
        schema = {"type": "object", "properties": {
            "title": TITLE,
            "sections": {"type": "array", "minItems": n, "maxItems": n, "items": {
                "type": "object", "properties": {"heading": HEADING, "points": {
                    "type": "array", "items": POINT, "minItems": 1, "maxItems": 2}},
                "required": ["heading", "points"], "additionalProperties": False}}},
            "required": ["title", "sections"], "additionalProperties": False}
        # No worked example in the prompt: the 135M default model copied it verbatim (title and
        # headings of the example article); the schema already fixes the shape.
        user = (f"Plan an article about {topic} for {audience} with exactly {n} sections. Reply with JSON: a title "
                f"about {topic}, and for each section a short heading and one or two key points (short phrases).")
        return PlanRequest(Prompt(user), schema, 40 + 55 * n)

    def normalise_plan(self, job_input: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
        headings = given_headings(job_input)
        if headings and "points" in raw:
            return {"title": raw["title"], "sections": [
                {"heading": h, "points": p} for h, p in zip(headings, raw["points"])]}
        return raw

    def repair_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
        """After re-planning failed, when the user gave the headings: their headings, each with the plan's
        points where it had some (else the heading itself as its point), under the plan's title or the
        topic. Without given headings there is nothing of the user's to rebuild sections from."""
        headings = given_headings(job_input)
        if not headings:
            return plan
        drafted = {_norm(s.get("heading", "")): s.get("points") or [] for s in plan.get("sections", [])
                   if isinstance(s, dict)}
        sections = [{"heading": h, "points": [p for p in drafted.get(_norm(h), []) if p.strip()] or [h]}
                    for h in headings]
        title = str(plan.get("title", "")).strip()
        if not title or _norm(title) in {_norm(h) for h in headings}:
            title = job_input["topic"][:1].upper() + job_input["topic"][1:]
        return {"title": title, "sections": sections}

    def combine_drafts(self, job_input: dict[str, Any], drafts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One plan from every round's: the first draft's title, and the first sections, across the drafts
        in order, with distinct headings that are not the title. Where too few are left, a section whose
        heading repeats one takes its first point that does not, as its heading: the default model often
        echoes the title as a heading, but its points are short phrases on the section's subject."""
        if not drafts:
            return None
        title = str(drafts[0].get("title", "")).strip()
        candidates = []  # (position, heading, points) of every section of every draft, in order
        for draft in drafts:
            for s in draft.get("sections", []):
                if isinstance(s, dict):
                    points = [LEADING_NUMBER.sub("", str(p)).strip() for p in s.get("points") or []]
                    candidates.append((len(candidates), str(s.get("heading", "")).strip(), [p for p in points if p]))
        n, seen, chosen = section_count(job_input), {_norm(title)}, {}
        for from_points in (False, True):  # own headings first, then points as headings
            for pos, heading, points in candidates:
                if len(chosen) == n or pos in chosen or not points:
                    continue
                name = next((h for h in ([] if not from_points else points) + ([heading] if not from_points else [])
                             if h and _norm(h) not in seen and len(h) <= MAX_HEADING_CHARS), None)
                if name is not None:
                    seen.add(_norm(name))
                    chosen[pos] = {"heading": name, "points": [p for p in points if p != name] or [name]}
        return {"title": title, "sections": [chosen[pos] for pos in sorted(chosen)]}

    def check_plan(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[str]:
        problems = []
        sections = plan.get("sections", [])
        if len(sections) != section_count(job_input):
            problems.append(f"{len(sections)} sections planned, {section_count(job_input)} asked for")
        for s, heading in zip(sections, given_headings(job_input) or []):
            if s.get("heading") != heading:
                problems.append(f"heading {s.get('heading')!r} is not the given {heading!r}")
        seen: set[str] = set()
        for s in sections:
            key = _norm(s.get("heading", ""))
            if not key:
                problems.append("a section has an empty heading")
            elif key in seen:
                problems.append(f"duplicate heading {s['heading']!r}")
            elif key == _norm(plan.get("title", "")):
                problems.append(f"heading {s['heading']!r} repeats the title")
            seen.add(key)
            if not any(p.strip() for p in s.get("points", [])):
                problems.append(f"section {s.get('heading')!r} has no key points")
        return problems

    def spans(self, job_input: dict[str, Any], plan: dict[str, Any]) -> list[Span]:
        topic, audience = job_input["topic"], job_input["audience"]
        return [
            Span(
                name=f"section {i + 1}",
                prompt=Prompt(f"Write the section \"{s['heading']}\" of an article about {topic} for {audience}. "
                              f"Cover: {', '.join(s['points'])}. Write one paragraph."),
                max_new_tokens=self.span_tokens,
                stop=("\n#", "<|im_start|>"),
                finish_sentences=True,
            )
            for i, s in enumerate(plan["sections"])
        ]

    def assemble(self, job_input: dict[str, Any], plan: dict[str, Any], texts: list[str]) -> str:
        parts = [f"# {plan['title'].strip()}\n"]
        for section, body in zip(plan["sections"], texts):
            parts.append(f"## {section['heading'].strip()}\n\n{clean_paragraphs(body, drop_heading=section['heading'])}\n")
        return "\n".join(parts)

    def fallback(self, job_input: dict[str, Any], plan: dict[str, Any]) -> Fallback:
        return Fallback("spans")  # the plan is kept; every section body is rewritten by AR

    def plain_span(self, job_input: dict[str, Any], cap: int) -> Span:
        """`plain` mode: the whole article in one reply, asked for as a user would. Its budget is the
        planned path's for the same text (a title; each section's heading and body), each part capped by
        HYBRIDGEN_MAX_NEW_TOKENS as the planned path's calls are."""
        n, headings = section_count(job_input), given_headings(job_input)
        if headings:
            sections = f"these {n} sections, in this order, each under its own \"## \" heading: {'; '.join(headings)}."
        else:
            sections = f"{n} sections, each under its own \"## \" heading."
        user = (f"Write an article about {job_input['topic']} for {job_input['audience']}, in Markdown. Start with a "
                f"\"# \" title line, then {sections} Write one paragraph per section.")
        return Span("reply", Prompt(user), min(40, cap) + n * min(self.span_tokens + 20, cap), stop=("<|im_start|>",))

    def parse_plain(self, job_input: dict[str, Any], reply: str) -> PlainReply:
        """The article is the reply's Markdown as written (a fence around the whole reply removed)."""
        text = unfenced(strip_chat_artifacts(reply), "markdown", "md")
        if not text:
            return PlainReply(reply, False, "the reply is empty")
        return PlainReply(text + "\n", True, "the reply's Markdown, as written")


ARTICLE = Article()
