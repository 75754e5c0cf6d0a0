"""Mark validator evidence (e.g. the two contradicting sentences) inside an output, as safe HTML."""

from __future__ import annotations

from typing import Any, Iterable

from markupsafe import Markup, escape


def evidence_spans(text: str, reports: Iterable[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(start, end, why) of every failing report's evidence that can be found in `text`.

    Offsets in a report point into the text the validator saw, which for a product record is a
    field of the JSON rather than the whole output; so an offset is trusted only when the text
    there matches, and otherwise the evidence is looked up by its words.
    """
    spans = []
    for report in reports:
        if report.get("passed", True):
            continue
        why = f"{report.get('validator', '')}: {report.get('message', '')}".strip(": ")
        for ev in report.get("evidence", []) or []:
            snippet = (ev.get("text") or "").strip()
            if not snippet:
                continue
            start, end = ev.get("start", -1), ev.get("end", -1)
            if not (isinstance(start, int) and 0 <= start < end <= len(text) and text[start:end].strip() == snippet):
                start = text.find(snippet)
                end = start + len(snippet)
            if start >= 0:
                spans.append((start, end, (ev.get("note") or why)[:300]))
    return _merge(sorted(spans))


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    merged: list[tuple[int, int, str]] = []
    for start, end, why in spans:
        if merged and start < merged[-1][1]:
            s0, e0, w0 = merged[-1]
            merged[-1] = (s0, max(e0, end), w0 if why in w0 else f"{w0}; {why}")
        else:
            merged.append((start, end, why))
    return merged


def highlighted(text: str | None, reports: Iterable[dict[str, Any]]) -> Markup:
    """`text` escaped for HTML, with each evidence span wrapped in <mark title=why>."""
    if not text:
        return Markup("")
    out, pos = [], 0
    for start, end, why in evidence_spans(text, reports):
        out.append(escape(text[pos:start]))
        out.append(Markup('<mark class="evidence" title="{}">{}</mark>').format(why, text[start:end]))
        pos = end
    out.append(escape(text[pos:]))
    return Markup("").join(out)
