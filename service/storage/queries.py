"""Queries and state transitions on items. Every write that matters is guarded by the claim.

A worker *claims* an item (queued -> running, run_count += 1) and owns that run until it
finishes it. Finishing writes the attempts and the final status in one transaction, and only if
the claim is still this worker's: if the item was requeued and claimed by someone else meanwhile
(a redelivered task after a crash), the late writer's transaction changes nothing. So an item
ends with exactly one final output, and attempt rows are never half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from service.storage.models import Attempt, Batch, Item, ItemStatus
from service.storage.search import search_text
from service.storage.types import utcnow


@dataclass
class AttemptRecord:
    """An attempt as the orchestrator produces it, before it is stored."""

    path: str
    passed: bool
    output: str | None
    reports: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    generated_tokens: int = 0
    forward_passes: int = 0
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime = field(default_factory=utcnow)

    @property
    def tokens_per_forward(self) -> float:
        return self.generated_tokens / self.forward_passes if self.forward_passes else 0.0


@dataclass(frozen=True)
class Claim:
    item_id: int
    run_no: int


def claim_items(session: Session, item_ids: Iterable[int], worker: str, stale_before: datetime,
                *, reclaim_own: bool = False) -> list[Claim]:
    """Move claimable items to running for `worker`. Claimable: queued, or running with a stale heartbeat.

    With `reclaim_own`, items still running under `worker` itself are claimable too (a new run
    number). The caller vouches that no run of its own is in progress on them: a task retried after
    a database error in the same process must not wait for its own abandoned claim to go stale.
    """
    now = utcnow()
    claims = []
    claimable = [
        Item.status == ItemStatus.queued.value,
        and_(Item.status == ItemStatus.running.value, Item.heartbeat_at < stale_before),
    ]
    if reclaim_own:
        claimable.append(and_(Item.status == ItemStatus.running.value, Item.claimed_by == worker))
    for item_id in item_ids:
        row = session.execute(
            update(Item)
            .where(Item.id == item_id, or_(*claimable))
            .values(
                status=ItemStatus.running.value,
                run_count=Item.run_count + 1,
                claimed_by=worker,
                heartbeat_at=now,
                started_at=now,
                updated_at=now,
                error=None,
            )
            .returning(Item.run_count)
        ).first()
        if row is not None:
            claims.append(Claim(item_id, row[0]))
    return claims


def heartbeat(session: Session, claims: Sequence[Claim], worker: str) -> int:
    """Refresh the heartbeat of items this worker still owns; returns how many it still owns."""
    if not claims:
        return 0
    result = session.execute(
        update(Item)
        .where(
            Item.id.in_([c.item_id for c in claims]),
            Item.claimed_by == worker,
            Item.status == ItemStatus.running.value,
        )
        .values(heartbeat_at=utcnow())
    )
    return result.rowcount or 0


def finish_item(
    session: Session,
    claim: Claim,
    worker: str,
    *,
    status: ItemStatus,
    attempts: Sequence[AttemptRecord],
    output: str | None = None,
    final_path: str | None = None,
    error: str | None = None,
) -> bool:
    """Store the attempts and final state of one claimed item. False if the claim was lost.

    The caller commits; on False it must roll back (nothing of this run may persist).
    """
    if status not in ItemStatus.final():
        raise ValueError(f"finish_item needs a final status, got {status}")
    now = utcnow()
    job_input = session.execute(select(Item.input).where(Item.id == claim.item_id)).scalar()
    owned = session.execute(
        update(Item)
        .where(
            Item.id == claim.item_id,
            Item.run_count == claim.run_no,
            Item.claimed_by == worker,
            Item.status == ItemStatus.running.value,
        )
        .values(
            status=status.value, output=output, final_path=final_path, error=error,
            finished_at=now, updated_at=now, claimed_by=None,
            failed_validators=failed_validator_names(attempts, final_path),
            # A new output needs a new review: earlier decisions were about the old one.
            review_status=None, edited_output=None,
            search_text=search_text(job_input, output),
        )
    ).rowcount
    if owned != 1:
        return False
    final_attempt_id = None
    for rec in attempts:
        attempt = Attempt(
            item_id=claim.item_id,
            run_no=claim.run_no,
            path=rec.path,
            models=rec.models,
            passed=rec.passed,
            output=rec.output,
            plan=rec.plan,
            reports=rec.reports,
            timings=rec.timings,
            prompt_tokens=rec.prompt_tokens,
            generated_tokens=rec.generated_tokens,
            forward_passes=rec.forward_passes,
            tokens_per_forward=round(rec.tokens_per_forward, 4),
            duration_s=round((rec.finished_at - rec.started_at).total_seconds(), 4),
            started_at=rec.started_at,
            finished_at=rec.finished_at,
        )
        session.add(attempt)
        session.flush()
        if rec.path == final_path:
            final_attempt_id = attempt.id
    if final_attempt_id is not None:
        session.execute(update(Item).where(Item.id == claim.item_id).values(final_attempt_id=final_attempt_id))
    return True


def failed_validator_names(attempts: Sequence[AttemptRecord], final_path: str | None) -> str | None:
    """",a,b," for the validators the final attempt failed; None when it failed none."""
    final = next((a for a in attempts if a.path == final_path), None)
    if final is None:
        return None
    names = sorted({r.get("validator", "") for r in final.reports if not r.get("passed", True)} - {""})
    return "," + ",".join(names) + "," if names else None


def requeue_items(session: Session, item_ids: Iterable[int], *, only_final: bool = False) -> list[int]:
    """Put items back to queued (admin requeue). Returns the ids that changed."""
    ids = list(item_ids)
    if not ids:
        return []
    cond = [Item.id.in_(ids)]
    if only_final:
        cond.append(Item.status.in_([s.value for s in ItemStatus.final()]))
    rows = session.execute(
        update(Item)
        .where(*cond)
        .values(status=ItemStatus.queued.value, claimed_by=None, enqueued_at=None, updated_at=utcnow())
        .returning(Item.id)
    ).all()
    return [r[0] for r in rows]


def reap_stale(session: Session, stale_before: datetime) -> list[int]:
    """Requeue running items whose worker stopped heart-beating. Returns their ids."""
    rows = session.execute(
        update(Item)
        .where(Item.status == ItemStatus.running.value, Item.heartbeat_at < stale_before)
        .values(status=ItemStatus.queued.value, claimed_by=None, enqueued_at=None, updated_at=utcnow())
        .returning(Item.id)
    ).all()
    return sorted(r[0] for r in rows)


def take_orphans(
    session: Session,
    *,
    unenqueued_before: datetime,
    lost_before: datetime | None,
    include: Sequence[int] = (),
    limit: int = 10_000,
) -> list[int]:
    """Queued items that no task carries: mark them enqueued now and return them; the caller sends them.

    Orphans are queued items that were
    - never enqueued (or requeued) and untouched since `unenqueued_before`: a submitter died
      between storing and queueing, or the broker refused the tasks;
    - in `include`, e.g. stale items the reaper just requeued;
    - enqueued before `lost_before` and still not started: the task was lost (a broker restarted
      without persistence, a message dropped). None means: do not look for lost tasks.

    Marking and selecting is one UPDATE whose WHERE repeats the conditions, so two reapers racing
    on PostgreSQL re-check each row after the other's write and never both take it.
    """
    conds = [and_(Item.enqueued_at.is_(None), Item.updated_at < unenqueued_before)]
    if include:
        conds.append(and_(Item.enqueued_at.is_(None), Item.id.in_(list(include))))
    if lost_before is not None:
        conds.append(Item.enqueued_at < lost_before)
    orphan = and_(Item.status == ItemStatus.queued.value, or_(*conds))
    candidates = select(Item.id).where(orphan).order_by(Item.id).limit(limit).scalar_subquery()
    rows = session.execute(
        update(Item).where(Item.id.in_(candidates), orphan).values(enqueued_at=utcnow()).returning(Item.id)
    ).all()
    return sorted(r[0] for r in rows)


def release_orphans(session: Session, item_ids: Sequence[int]) -> None:
    """Undo take_orphans for items whose tasks could not be sent, so the next pass takes them again."""
    for start in range(0, len(item_ids), 1000):
        session.execute(
            update(Item)
            .where(Item.id.in_(list(item_ids[start:start + 1000])), Item.status == ItemStatus.queued.value)
            .values(enqueued_at=None)
        )


def unenqueued_items(session: Session, created_before: datetime, limit: int = 10_000) -> list[int]:
    """Queued items that no task carries (never enqueued, or requeued); the reaper enqueues them."""
    rows = session.execute(
        select(Item.id)
        .where(Item.status == ItemStatus.queued.value, Item.enqueued_at.is_(None), Item.updated_at < created_before)
        .order_by(Item.id)
        .limit(limit)
    ).all()
    return [r[0] for r in rows]


def mark_enqueued(session: Session, item_ids: Sequence[int]) -> None:
    if item_ids:
        session.execute(update(Item).where(Item.id.in_(list(item_ids))).values(enqueued_at=utcnow()))


def status_counts(session: Session, batch_id: int) -> dict[str, int]:
    return status_counts_by_batch(session, [batch_id])[batch_id]


def status_counts_by_batch(session: Session, batch_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """{batch id: {status: items}} with every status present (0 when none)."""
    out = {b: {s.value: 0 for s in ItemStatus} for b in batch_ids}
    if batch_ids:
        rows = session.execute(
            select(Item.batch_id, Item.status, func.count())
            .where(Item.batch_id.in_(list(batch_ids)))
            .group_by(Item.batch_id, Item.status)
        ).all()
        for batch_id, status, n in rows:
            out[batch_id][status] = n
    return out


def _progress(counts: dict[str, int]) -> dict[str, Any]:
    total = sum(counts.values())
    finished = sum(counts[s.value] for s in ItemStatus.final())
    return {"total": total, "finished": finished, "progress": round(finished / total, 4) if total else 1.0}


def list_batches(session: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest batches with counts by status and progress, newest first."""
    batches = session.execute(select(Batch).order_by(Batch.id.desc()).limit(limit)).scalars().all()
    counts = status_counts_by_batch(session, [b.id for b in batches])
    now = utcnow()
    return [
        {"batch_id": b.id, "name": b.name, "mode": b.mode, "created_at": b.created_at.isoformat(),
         "age_s": round((now - b.created_at).total_seconds(), 1), **_progress(counts[b.id]), "counts": counts[b.id]}
        for b in batches
    ]


def item_conditions(batch_id: int, statuses: Sequence[str] = (), validator: str | None = None) -> list[Any]:
    """WHERE terms for a batch's items, optionally with these statuses and failing this validator."""
    cond = [Item.batch_id == batch_id]
    if statuses:
        cond.append(Item.status.in_(list(statuses)))
    if validator:  # "degeneration" also finds "degeneration[description]" (a validator run on one field)
        cond.append(or_(Item.failed_validators.contains(f",{validator},", autoescape=True),
                        Item.failed_validators.contains(f",{validator}[", autoescape=True)))
    return cond


def matching_item_ids(session: Session, batch_id: int, statuses: Sequence[str] = (),
                      validator: str | None = None) -> list[int]:
    return list(session.execute(
        select(Item.id).where(*item_conditions(batch_id, statuses, validator)).order_by(Item.line_no, Item.id)
    ).scalars())


def list_items(session: Session, batch_id: int, statuses: Sequence[str] = (), validator: str | None = None,
               *, limit: int = 100) -> list[dict[str, Any]]:
    """A batch's items (in line order) with why each one failed: the first failing report of its final
    attempt (the named validator's, if one is given), or the first line of its error."""
    rows = session.execute(
        select(Item.id, Item.line_no, Item.client_key, Item.kind, Item.status, Item.final_path,
               Item.failed_validators, Item.error, Item.review_status, Attempt.reports)
        .outerjoin(Attempt, Attempt.id == Item.final_attempt_id)
        .where(*item_conditions(batch_id, statuses, validator))
        .order_by(Item.line_no, Item.id)
        .limit(limit)
    ).all()
    return [
        {"item_id": item_id, "line": line, "key": key, "kind": kind, "status": status, "path": path,
         "failed_validators": (failed or "").strip(",").split(",") if failed else [],
         "message": first_failure(reports or [], error, validator), "review_status": review}
        for item_id, line, key, kind, status, path, failed, error, review, reports in rows
    ]


def first_failure(reports: Sequence[dict[str, Any]], error: str | None, validator: str | None = None) -> str:
    """'validator: message' of the first failing report (of `validator` if given); else the error's first line."""
    failed = [r for r in reports if not r.get("passed", True)
              and (validator is None or r.get("validator", "").split("[")[0] == validator.split("[")[0])]
    if failed:
        return f"{failed[0].get('validator', '?')}: {failed[0].get('message', '')}"
    return (error or "").strip().split("\n", 1)[0]


def failures_by_validator(session: Session, batch_id: int) -> dict[str, int]:
    """Flagged items per validator their final attempt failed (an item counts once per validator)."""
    rows = session.execute(
        select(Item.failed_validators, func.count())
        .where(Item.batch_id == batch_id, Item.status == ItemStatus.flagged.value, Item.failed_validators.is_not(None))
        .group_by(Item.failed_validators)
    ).all()
    out: dict[str, int] = {}
    for names, n in rows:
        for name in filter(None, names.split(",")):
            out[name] = out.get(name, 0) + n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def review_counts(session: Session, batch_id: int) -> dict[str, int]:
    """Items per latest review decision, and the flagged items nobody has reviewed yet."""
    rows = session.execute(
        select(Item.review_status, func.count())
        .where(Item.batch_id == batch_id, Item.review_status.is_not(None))
        .group_by(Item.review_status)
    ).all()
    out = {s: 0 for s in ("approved", "rejected", "edited", "requeued")}
    out.update(dict(rows))
    out["flagged_not_reviewed"] = session.execute(
        select(func.count()).where(Item.batch_id == batch_id, Item.status == ItemStatus.flagged.value,
                                   Item.review_status.is_(None))
    ).scalar_one()
    return out


def batch_timing(session: Session, batch: Batch, finished: int, total: int) -> dict[str, Any]:
    """Elapsed time since submission, the rate items finished at while being worked on, and the ETA
    that rate gives for the rest (None while nothing has finished)."""
    first_start, last_finish = session.execute(
        select(func.min(Item.started_at), func.max(Item.finished_at)).where(Item.batch_id == batch.id)
    ).one()
    end = last_finish if finished == total and last_finish is not None else utcnow()
    working_s = (last_finish - first_start).total_seconds() if first_start and last_finish else 0.0
    per_hour = finished / working_s * 3600 if working_s > 0 and finished else None
    remaining = total - finished
    return {
        "elapsed_s": round(max(0.0, (end - batch.created_at).total_seconds()), 1),
        "items_per_hour": round(per_hour, 1) if per_hour else None,
        "eta_s": 0.0 if remaining == 0 else (round(remaining / per_hour * 3600, 1) if per_hour else None),
        "first_started_at": first_start.isoformat() if first_start else None,
        "last_finished_at": last_finish.isoformat() if last_finish else None,
    }


def batch_summary(session: Session, batch_id: int) -> dict[str, Any] | None:
    """Progress, pass/fallback rates and decode counters of one batch."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        return None
    counts = status_counts(session, batch_id)
    progress = _progress(counts)
    total, finished = progress["total"], progress["finished"]
    by_kind = {
        kind: {"items": n, "done": d}
        for kind, n, d in session.execute(
            select(Item.kind, func.count(), func.sum(case((Item.status == ItemStatus.done.value, 1), else_=0)))
            .where(Item.batch_id == batch_id)
            .group_by(Item.kind)
        ).all()
    }
    attempt_rows = session.execute(
        select(
            Attempt.path,
            func.count(),
            func.sum(case((Attempt.passed, 1), else_=0)),
            func.sum(Attempt.generated_tokens),
            func.sum(Attempt.forward_passes),
            func.sum(Attempt.duration_s),
        )
        .join(Item, Item.id == Attempt.item_id)
        .where(Item.batch_id == batch_id)
        .group_by(Attempt.path)
    ).all()
    paths = {
        path: {
            "attempts": n,
            "passed": int(passed or 0),
            "generated_tokens": int(tokens or 0),
            "forward_passes": int(fwd or 0),
            "tokens_per_forward": round((tokens or 0) / fwd, 3) if fwd else 0.0,
            "seconds": round(secs or 0.0, 2),
        }
        for path, n, passed, tokens, fwd, secs in attempt_rows
    }
    return {
        "batch_id": batch.id,
        "name": batch.name,
        "mode": batch.mode,
        "created_at": batch.created_at.isoformat(),
        **progress,
        "counts": counts,
        "kinds": by_kind,
        "paths": paths,
        "pass_rate": round(counts["done"] / finished, 4) if finished else None,
        # of the hybrid attempts, the share that needed the AR fallback
        "fallback_rate": (round(paths["ar_fallback"]["attempts"] / paths["hybrid"]["attempts"], 4)
                          if "hybrid" in paths and "ar_fallback" in paths else (0.0 if "hybrid" in paths else None)),
        "failures": failures_by_validator(session, batch_id),
        "reviews": review_counts(session, batch_id),
        "timing": batch_timing(session, batch, finished, total),
        "stored_earlier": len((batch.params or {}).get("stored_earlier", [])),
    }

