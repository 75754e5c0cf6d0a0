"""Everything the item review page shows, gathered in one plain function (testable without HTTP)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from hybridgen.admin.highlight import highlighted
from service.storage.models import Attempt, AttemptPath, Item, Review

PATH_TITLES = {
    AttemptPath.hybrid.value: "Hybrid output (plan + refiner)",
    AttemptPath.ar_fallback.value: "Fallback output (full AR)",
    AttemptPath.ar.value: "AR output (ar mode)",
    AttemptPath.plain.value: "Plain prompt output (plain mode)",
}


@dataclass
class AttemptView:
    attempt: Attempt
    title: str
    output_html: Markup
    failing: list[dict[str, Any]]
    passing: list[dict[str, Any]]
    is_final: bool


@dataclass
class ItemPage:
    item: Item
    input_json: str
    plan_json: str | None
    attempts: list[AttemptView]
    """The latest run's attempts, in the order they were tried (hybrid, then fallback)."""
    earlier_runs: int
    reviews: list[Review]
    final_output_html: Markup
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """Failing reports of the final attempt: what a reviewer must look at first."""


def item_page(session: Session, item_id: int) -> ItemPage | None:
    item = session.get(Item, item_id)
    if item is None:
        return None
    attempts = list(session.execute(
        select(Attempt).where(Attempt.item_id == item_id).order_by(Attempt.run_no, Attempt.id)
    ).scalars())
    latest_run = max((a.run_no for a in attempts), default=0)
    latest = [a for a in attempts if a.run_no == latest_run]
    views = [
        AttemptView(
            attempt=a,
            title=PATH_TITLES.get(a.path, a.path),
            output_html=highlighted(a.output, a.reports),
            failing=[r for r in a.reports if not r.get("passed", True)],
            passing=[r for r in a.reports if r.get("passed", True)],
            is_final=a.id == item.final_attempt_id,
        )
        for a in latest
    ]
    final = next((v for v in views if v.is_final), views[-1] if views else None)
    plan = next((a.plan for a in latest if a.plan), None)
    reviews = list(session.execute(select(Review).where(Review.item_id == item_id).order_by(Review.id)).scalars())
    shown = item.edited_output if item.edited_output is not None else item.output
    return ItemPage(
        item=item,
        input_json=json.dumps(item.input, indent=2, ensure_ascii=False),
        plan_json=json.dumps(plan, indent=2, ensure_ascii=False) if plan else None,
        attempts=views,
        earlier_runs=len({a.run_no for a in attempts}) - (1 if latest else 0),
        reviews=reviews,
        final_output_html=highlighted(shown, final.attempt.reports if final and item.edited_output is None else []),
        evidence=final.failing if final else [],
    )
