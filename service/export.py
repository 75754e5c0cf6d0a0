"""Export a batch as JSONL records (streamed; never loads a whole batch in memory).

A batch whose submission named client keys stored before holds only the new jobs; its export
also carries the earlier items (after its own, with `stored_earlier: true` and the line of this
submission), so a client gets one record per job it sent.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.storage.models import Attempt, Batch, Item

EXPORT_PAGE = 500


def export_records(session: Session, batch_id: int, *, include_rejected: bool = False) -> Iterator[dict[str, Any]]:
    batch = session.get(Batch, batch_id)
    params = (batch.params if batch is not None else None) or {}
    held = params.get("keys_held_elsewhere", {})  # a `new_batch` copy: keys its items could not take
    last_id = 0
    while True:
        items = _page(session, Item.batch_id == batch_id, Item.id > last_id)
        if not items:
            break
        last_id = items[-1].id
        for item, record in _records(session, items, include_rejected):
            record["key"] = record["key"] or held.get(str(item.line_no))
            yield {**record, "stored_earlier": False}
    earlier = params.get("stored_earlier", [])
    for start in range(0, len(earlier), EXPORT_PAGE):
        page = earlier[start:start + EXPORT_PAGE]
        items = _page(session, Item.id.in_([e["item_id"] for e in page]))
        line_of = {e["item_id"]: e["line"] for e in page}
        for item, record in sorted(_records(session, items, include_rejected), key=lambda p: line_of[p[0].id]):
            yield {**record, "line": line_of[item.id], "stored_earlier": True}


def _page(session: Session, *conditions: Any) -> list[Item]:
    q = select(Item).where(*conditions).options(selectinload(Item.reviews)).order_by(Item.id).limit(EXPORT_PAGE)
    return list(session.execute(q).scalars().all())


def _records(session: Session, items: list[Item], include_rejected: bool) -> list[tuple[Item, dict[str, Any]]]:
    """(item, record) for the items a reader gets: rejected ones only when asked for."""
    final_ids = [i.final_attempt_id for i in items if i.final_attempt_id]
    finals = {
        a.id: a for a in session.execute(select(Attempt).where(Attempt.id.in_(final_ids))).scalars()
    } if final_ids else {}
    return [(item, item_record(item, finals.get(item.final_attempt_id))) for item in items
            if include_rejected or item.review_status != "rejected"]


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
