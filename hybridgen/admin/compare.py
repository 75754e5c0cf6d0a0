"""The comparison on the item page: the latest run's outputs side by side, rendered, with the word
diffs between them, which one is exported now, and which one a reviewer may choose instead.

Plain functions over loaded rows (no session, no HTTP), so the rules are tested directly:
- the exported output is the reviewer's edit when there is one, else the gate's final attempt;
- an edit that is one attempt's output word for word (what "use this version" stores) marks that
  attempt as the exported one; any other edit gets a card of its own, so no output is shown twice;
- every attempt that is not the exported one, and has an output, offers "use this version".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Iterable

from markupsafe import Markup

from hybridgen.admin.highlight import highlighted
from hybridgen.admin.render_output import Rendered, readable_text, render_code, render_output, shown_value
from hybridgen.admin.word_diff import WordDiff, word_diff
from service.storage.models import Attempt, AttemptPath, Feedback, FeedbackLabel, Item

PATH_TITLES = {
    AttemptPath.hybrid.value: "Hybrid (plan + refiner)",
    AttemptPath.ar_fallback.value: "Fallback (full AR)",
    AttemptPath.ar.value: "AR (ar mode)",
    AttemptPath.plain.value: "Plain prompt (plain mode)",
}
SHORT_TITLES = {"hybrid": "hybrid", "ar_fallback": "fallback", "ar": "ar", "plain": "plain"}


@dataclass
class ReportView:
    report: dict[str, Any]
    false_flagged_by: list[str] = field(default_factory=list)

    @property
    def validator(self) -> str:
        return str(self.report.get("validator", ""))

    @property
    def message(self) -> str:
        return str(self.report.get("message", ""))


@dataclass
class AttemptView:
    attempt: Attempt
    title: str
    rendered: Rendered
    """The output as a reader sees it (Markdown as HTML, a product card, highlighted code)."""
    output_html: Markup
    """The output's text with the failing reports' evidence marked (the source view)."""
    failing: list[ReportView]
    passing: list[dict[str, Any]]
    is_final: bool
    """The quality gate's choice (items.final_attempt_id)."""
    is_exported: bool
    """Its output is what the item exports now (the gate's choice, or the reviewer's)."""
    missed_defects: list[Feedback] = field(default_factory=list)

    @property
    def can_use(self) -> bool:
        return not self.is_exported and self.attempt.output is not None

    @property
    def passing_names(self) -> list[str]:
        return [str(r.get("validator", "")) for r in self.passing]

    @property
    def evidence_shown(self) -> bool:
        """Whether the rendered view marks any evidence."""
        return "<mark" in self.rendered.html or 'class="hll"' in self.rendered.html

    @property
    def open_source(self) -> bool:
        """Open the source view by itself: there is evidence, and the rendered view could not mark it
        (it lies across formatting, or in JSON text that is no field)."""
        return "<mark" in self.output_html and not self.evidence_shown

    @property
    def dom_id(self) -> str:
        return f"attempt-{self.attempt.path}"


@dataclass
class DiffView:
    title: str
    old: str
    new: str
    diff: WordDiff


@dataclass
class Comparison:
    attempts: list[AttemptView]
    edited: Rendered | None
    """The reviewer's edit, when it is not one of the attempts' outputs."""
    diffs: list[DiffView]
    exported_label: str
    """Which output the item exports now, in words."""


def compare(item: Item, latest: list[Attempt], feedback: Iterable[Feedback] = ()) -> Comparison:
    feedback = list(feedback)
    edited = item.edited_output
    chosen_id = None
    if edited is not None:
        same = [a for a in latest if a.output == edited]
        # Several attempts can hold the same text (hybrid and ar often do); the gate's is the natural pick.
        chosen_id = next((a.id for a in same if a.id == item.final_attempt_id), same[-1].id if same else None)
    views = []
    for a in latest:
        reports = list(a.reports or [])
        failing = [r for r in reports if not r.get("passed", True)]
        views.append(AttemptView(
            attempt=a,
            title=PATH_TITLES.get(a.path, a.path),
            rendered=render_output(item.kind, a.output, failing),
            output_html=highlighted(a.output, failing),
            failing=[ReportView(r, [f.labeller_name for f in feedback if f.attempt_id == a.id
                                    and f.label == FeedbackLabel.false_flag.value
                                    and f.validator == r.get("validator")]) for r in failing],
            passing=[r for r in reports if r.get("passed", True)],
            is_final=a.id == item.final_attempt_id,
            is_exported=(a.id == chosen_id) if edited is not None else a.id == item.final_attempt_id,
            missed_defects=[f for f in feedback if f.attempt_id == a.id
                            and f.label == FeedbackLabel.missed_defect.value],
        ))
    edited_card = render_output(item.kind, edited) if edited is not None and chosen_id is None else None
    return Comparison(views, edited_card, diffs(item, views, edited if edited_card else None),
                      exported_label(item, views, edited_card is not None))


def diffs(item: Item, views: list[AttemptView], edited: str | None) -> list[DiffView]:
    """Each attempt against the one tried before it (hybrid -> fallback), and the edit against the
    gate's output. For a product the written fields are compared, not the JSON."""
    out = []
    with_output = [v for v in views if v.attempt.output is not None]
    for before, after in zip(with_output, with_output[1:]):
        out.append(_diff(item.kind, short(before), before.attempt.output, short(after), after.attempt.output))
    if edited is not None:
        base = next((v for v in views if v.is_final), with_output[-1] if with_output else None)
        out.append(_diff(item.kind, short(base) if base else "generated", base.attempt.output if base else item.output,
                         "your edit", edited))
    return out


def _diff(kind: str, old_name: str, old: str | None, new_name: str, new: str | None) -> DiffView:
    return DiffView(f"{old_name} → {new_name}", old_name, new_name,
                    word_diff(readable_text(kind, old), readable_text(kind, new)))


def short(view: AttemptView) -> str:
    return SHORT_TITLES.get(view.attempt.path, view.attempt.path)


def exported_label(item: Item, views: list[AttemptView], edited_card: bool) -> str:
    if edited_card:
        return "the reviewer's edit"
    chosen = next((v for v in views if v.is_exported), None)
    if chosen is None:
        return "no output" if not item.output else "the stored output (from an earlier run)"
    return f"the {short(chosen)} output" + ("" if chosen.is_final else ", chosen by a reviewer")


# -- the job input ------------------------------------------------------------------------------

def input_rows(kind: str, job_input: dict[str, Any]) -> list[tuple[str, Markup]]:
    """The job's input as (field, value) rows: the product's attributes as a list, code as code."""
    rows = []
    for key, value in (job_input or {}).items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        if kind == "code" and key in ("prompt", "tests", "test_setup"):
            text = "\n".join(map(str, value)) if isinstance(value, list) else str(value)
            rows.append((key, render_code(text) if _is_python(text) else Markup('<pre class="output">{}</pre>').format(text)))
        elif isinstance(value, dict):
            items = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, shown_value(v)) for k, v in value.items())
            rows.append((key, Markup('<dl class="input-map">{}</dl>').format(items)))
        elif isinstance(value, list):
            items = Markup("").join(Markup("<li>{}</li>").format(shown_value(v)) for v in value)
            rows.append((key, Markup('<ol class="input-list">{}</ol>').format(items)))
        else:
            rows.append((key, Markup("{}").format(shown_value(value))))
    return rows


def _is_python(text: str) -> bool:
    """A code job's prompt is either code or a task in words (docs/review-rubric.md section 1)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return not all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Name) for n in tree.body)
