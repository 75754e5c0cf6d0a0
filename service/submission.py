"""Store a parsed batch: all of it in one transaction, or nothing.

Idempotency:
- the same jobs submitted again (same content hash) return the batch stored the first time;
  `resubmission_conflict` says when that batch was made for another mode or model, and
  `new_batch=True` stores the jobs again as a batch of their own;
- a job whose client `key` is already stored is not stored again: the result names the stored
  item instead, only the other jobs form the new batch, and the batch remembers the stored ones
  (params["stored_earlier"]) so that its export includes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.modes import MODES
from service.spec import ParsedBatch
from service.storage.models import Batch, Item, ItemStatus
from service.storage.search import search_text
from service.storage.types import utcnow



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
    model: str | None = None,
    new_batch: bool = False,
) -> SubmitResult:
    """Store the jobs as a batch, or answer with the batch that holds them already.

    `model` (the HYBRIDGEN_MODEL that will generate it) is recorded with the batch, so that a later
    submission with another model is noticed. `new_batch`: always store a new batch, even of jobs
    stored before; keys held by earlier items stay with them (the batch keeps them for its export).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    params = {**(params or {}), **({"model": model} if model else {})}
    for attempt in range(3):
        try:
            with sessions() as session, session.begin():
                return _store(session, parsed, name=name, mode=mode, params=params, new_batch=new_batch)
        except IntegrityError:
            # A concurrent submission stored the same content hash or key between our check and
            # insert; the next round sees it and answers idempotently.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def resubmission_conflict(sessions: sessionmaker[Session], parsed: ParsedBatch, *, mode: str,
                          model: str | None) -> str | None:
    """Why these jobs must not silently resume their stored batch: it was made for another mode or
    model (None when there is no such batch, or it matches)."""
    with sessions() as session:
        same = _batch_of(session, parsed, mode, model)
        if same is None:
            return None
        stored_model = (same.params or {}).get("model")
        differences = [f"mode {same.mode} (asked: {mode})"] if same.mode != mode else []
        if model and stored_model and stored_model != model:
            differences.append(f"model {stored_model} (asked: {model})")
        if not differences:
            return None
        return (f"these jobs are stored already as batch {same.id}, with {' and '.join(differences)}; "
                "resuming it would not give what was asked")


def _batch_of(session: Session, parsed: ParsedBatch, mode: str, model: str | None) -> Batch | None:
    """The batch these jobs were stored as: the one made for this mode and model with `new_batch`, if
    any, else the first one."""
    for digest in (_variant_sha256(parsed, mode, model), parsed.content_sha256):
        found = session.execute(select(Batch).where(Batch.content_sha256 == digest)).scalar_one_or_none()
        if found is not None:
            return found
    return None


def _variant_sha256(parsed: ParsedBatch, mode: str, model: str | None) -> str:
    """The hash a `new_batch` copy of these jobs is stored under, so that the same file in the same mode
    and model resumes that copy rather than the first batch."""
    return hashlib.sha256(f"{parsed.content_sha256}|{mode}|{model or ''}".encode()).hexdigest()


def _store(session: Session, parsed: ParsedBatch, *, name: str, mode: str, params: dict[str, Any],
           new_batch: bool) -> SubmitResult:
    content_sha256: str | None = parsed.content_sha256
    if new_batch:
        # content_sha256 is unique: a copy gets the variant hash, and a second copy none (it is
        # found by id only).
        variant = _variant_sha256(parsed, mode, params.get("model"))
        taken = session.execute(select(Batch.id).where(Batch.content_sha256 == variant)).first()
        content_sha256 = None if taken else variant
    else:
        same = _batch_of(session, parsed, mode, params.get("model"))
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
    if new_batch:
        # A client key is stored once, on its first item; the copy's items go without, and the batch
        # keeps them by line for its export.
        new_jobs = list(parsed.jobs)
        params = {**params, "keys_held_elsewhere": {str(e.line_no): e.key for e in existing}} if existing else params
        existing = []
    else:
        new_jobs = [j for j in parsed.jobs if j.key not in stored]
    if not new_jobs:
        # Every job is already stored under its key: answer with the batch that holds the first.
        return SubmitResult(batch_id=existing[0].batch_id, existing=existing, duplicate_batch=True)
    if existing:
        params = {**params, "stored_earlier": [{"line": e.line_no, "key": e.key, "item_id": e.item_id}
                                               for e in existing]}

    now = utcnow()
    batch = Batch(
        name=name[:300], content_sha256=content_sha256, mode=mode, params=params,
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
            "search_text": search_text(j.input, None),
            "params": j.params,
            "client_key": None if j.key in stored else j.key,
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
