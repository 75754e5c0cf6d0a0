"""Everything the item review page shows, gathered in one plain function (testable without HTTP)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from hybridgen.admin.compare import AttemptView, Comparison, compare, input_rows
from hybridgen.admin.highlight import highlighted
from service.feedback import DefectClass, classes_for, feedback_for_item
from service.storage.models import Attempt, Feedback, Item, Review

@dataclass
class ItemPage:
    item: Item
    plan_json: str | None
    attempts: list[AttemptView]
    """The latest run's attempts, in the order they were tried (hybrid, then fallback)."""
    earlier_runs: int
    reviews: list[Review]
    final_output_html: Markup
    """The exported output's text with the final attempt's evidence marked."""
    comparison: Comparison
    input_rows: list[tuple[str, Markup]]
    """The job input, field by field, for the top of the comparison."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """Failing reports of the final attempt: what a reviewer must look at first."""
    feedback: list[Feedback] = field(default_factory=list)
    defect_classes: list[DefectClass] = field(default_factory=list)
    """The rubric's classes for this kind, for "missed defect"."""


def item_page(session: Session, item_id: int) -> ItemPage | None:
    item = session.get(Item, item_id)
    if item is None:
        return None
    attempts = list(session.execute(
        select(Attempt).where(Attempt.item_id == item_id).order_by(Attempt.run_no, Attempt.id)
    ).scalars())
    latest_run = max((a.run_no for a in attempts), default=0)
    latest = [a for a in attempts if a.run_no == latest_run]
    feedback = feedback_for_item(session, item_id)
    comparison = compare(item, latest, feedback)
    views = comparison.attempts
    final = next((v for v in views if v.is_final), views[-1] if views else None)
    plan = next((a.plan for a in latest if a.plan), None)
    reviews = list(session.execute(select(Review).where(Review.item_id == item_id).order_by(Review.id)).scalars())
    shown = item.edited_output if item.edited_output is not None else item.output
    final_failing = [r.report for r in final.failing] if final else []
    return ItemPage(
        item=item,
        plan_json=json.dumps(plan, indent=2, ensure_ascii=False) if plan else None,
        attempts=views,
        earlier_runs=len({a.run_no for a in attempts}) - (1 if latest else 0),
        reviews=reviews,
        final_output_html=highlighted(shown, final_failing if item.edited_output is None else []),
        comparison=comparison,
        input_rows=input_rows(item.kind, item.input),
        evidence=final_failing,
        feedback=feedback,
        defect_classes=classes_for(item.kind),
    )
