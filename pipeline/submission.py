"""Store a parsed batch: all of it in one transaction, or nothing.

Idempotency:
- the same jobs submitted again (same content hash) return the batch stored the first time;
- a job whose client `key` is already stored is not stored again: the result names the stored
  item instead, and only the other jobs form the new batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.spec import ParsedBatch
from pipeline.storage.models import Batch, Item, ItemStatus
from pipeline.storage.types import utcnow

MODES = ("hybrid", "ar")


@dataclass
class ExistingItem:
    line_no: int
    key: str
    item_id: int
    batch_id: int
    status: str


@dataclass
class SubmitResult:
    batch_id: int
    new_item_ids: list[int] = field(default_factory=list)
    existing: list[ExistingItem] = field(default_factory=list)
    duplicate_batch: bool = False
    """True when these exact jobs were submitted before: nothing new was stored."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "new_items": len(self.new_item_ids),
            "existing_items": [e.__dict__ for e in self.existing],
            "duplicate_batch": self.duplicate_batch,
        }


def submit_batch(
    sessions: sessionmaker[Session],
    parsed: ParsedBatch,
    *,
    name: str,
    mode: str,
    params: dict[str, Any] | None = None,
) -> SubmitResult:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for attempt in range(3):
        try:
            with sessions() as session, session.begin():
                return _store(session, parsed, name=name, mode=mode, params=params or {})
        except IntegrityError:
            # A concurrent submission stored the same content hash or key between our check and
            # insert; the next round sees it and answers idempotently.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _store(session: Session, parsed: ParsedBatch, *, name: str, mode: str, params: dict[str, Any]) -> SubmitResult:
    same = session.execute(select(Batch).where(Batch.content_sha256 == parsed.content_sha256)).scalar_one_or_none()
    if same is not None:
        return SubmitResult(batch_id=same.id, duplicate_batch=True)

    keys = [j.key for j in parsed.jobs if j.key is not None]
    stored: dict[str, Item] = {}
    for start in range(0, len(keys), 500):
        for item in session.execute(select(Item).where(Item.client_key.in_(keys[start:start + 500]))).scalars():
            stored[item.client_key] = item
    existing = [
        ExistingItem(j.line_no, j.key, stored[j.key].id, stored[j.key].batch_id, stored[j.key].status)
        for j in parsed.jobs
        if j.key in stored
    ]
    new_jobs = [j for j in parsed.jobs if j.key not in stored]
    if not new_jobs:
        # Every job is already stored under its key: answer with the batch that holds the first.
        return SubmitResult(batch_id=existing[0].batch_id, existing=existing, duplicate_batch=True)

    now = utcnow()
    batch = Batch(
        name=name[:300], content_sha256=parsed.content_sha256, mode=mode, params=params,
        item_count=len(new_jobs), created_at=now,
    )
    session.add(batch)
    session.flush()
    rows = [
        {
            "batch_id": batch.id,
            "line_no": j.line_no,
            "kind": j.kind,
            "input": j.input,
            "params": j.params,
            "client_key": j.key,
            "status": ItemStatus.queued.value,
            "run_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        for j in new_jobs
    ]
    # Bulk insert: 10k items in one round trip per 1k rows, not one ORM flush per item.
    for start in range(0, len(rows), 1000):
        session.execute(insert(Item), rows[start:start + 1000])
    ids = session.execute(select(Item.id).where(Item.batch_id == batch.id).order_by(Item.line_no)).scalars().all()
    return SubmitResult(batch_id=batch.id, new_item_ids=list(ids), existing=existing)


def queued_item_ids(sessions: sessionmaker[Session], batch_id: int, *, only_unenqueued: bool = False) -> list[int]:
    """Ids of the batch's queued items (only those no task carries yet, if asked)."""
    cond = [Item.batch_id == batch_id, Item.status == ItemStatus.queued.value]
    if only_unenqueued:
        cond.append(Item.enqueued_at.is_(None))
    with sessions() as session:
        return list(session.execute(select(Item.id).where(*cond).order_by(Item.line_no)).scalars())


def chunks(item_ids: Sequence[int], size: int) -> list[list[int]]:
    """Split ids into queue tasks of at most `size` items (one generation batch each)."""
    size = max(1, size)
    return [list(item_ids[i:i + size]) for i in range(0, len(item_ids), size)]
