"""Export a batch as JSONL records (streamed; never loads a whole batch in memory)."""

from __future__ import annotations

import json
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pipeline.storage.models import Attempt, Item

EXPORT_PAGE = 500


def export_records(session: Session, batch_id: int, *, include_rejected: bool = False) -> Iterator[dict[str, Any]]:
    last_id = 0
    while True:
        q = (
            select(Item)
            .where(Item.batch_id == batch_id, Item.id > last_id)
            .options(selectinload(Item.reviews))
            .order_by(Item.id)
            .limit(EXPORT_PAGE)
        )
        items = session.execute(q).scalars().all()
        if not items:
            return
        final_ids = [i.final_attempt_id for i in items if i.final_attempt_id]
        finals = {
            a.id: a for a in session.execute(select(Attempt).where(Attempt.id.in_(final_ids))).scalars()
        } if final_ids else {}
        for item in items:
            last_id = item.id
            if item.review_status == "rejected" and not include_rejected:
                continue
            yield item_record(item, finals.get(item.final_attempt_id))


def item_record(item: Item, final_attempt: Attempt | None) -> dict[str, Any]:
    latest = item.reviews[-1] if item.reviews else None
    # A reviewer's edit replaces the generated output (the generated one stays in the attempts).
    output = item.edited_output if item.edited_output is not None else item.output
    record: dict[str, Any] = {
        "item_id": item.id,
        "batch_id": item.batch_id,
        "line": item.line_no,
        "key": item.client_key,
        "kind": item.kind,
        "status": item.status,
        "input": item.input,
        "output": output,
        "final_path": item.final_path,
        "error": item.error,
        "review_status": item.review_status,
        "edited": item.edited_output is not None,
        "review": None if latest is None else {
            "decision": latest.decision,
            "reviewer": latest.reviewer_name,
            "note": latest.note,
            "at": latest.created_at.isoformat(),
        },
        "reports": final_attempt.reports if final_attempt else [],
    }
    if item.kind == "product" and output:
        try:
            record["record"] = json.loads(output)
        except json.JSONDecodeError:
            record["record"] = None
    return record
