"""run_chunk: claim items, generate them, store each item's attempts and final status.

    claim (queued -> running)  ──►  generate by the item's mode  ──►  finish (one transaction per item)

Data moves forward only: this module never touches the queue. Celery tasks (workers/) and the
in-process `hybridgen run` both call run_chunk with item ids.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from generators.decoding.progress import watching
from pipeline.heartbeat import Heartbeat
from pipeline.jobs import ItemJob, ItemOutcome
from pipeline.runtime import Runtime
from pipeline.paths import run_fallback, run_planned
from pipeline.plain import run_plain
from pipeline.retries import retry_failed
from service.storage.models import AttemptPath, Batch, Item, ItemStatus
from service.storage.queries import AttemptRecord, Claim, claim_items, finish_item
from service.storage.types import utcnow
from service.webhook import announce_if_finished

log = logging.getLogger(__name__)


@dataclass
class ChunkOutcome:
    claimed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    """Items not claimable: already final, running elsewhere, or missing."""
    finished: dict[int, str] = field(default_factory=dict)
    """item id -> final status, for items whose result this run stored."""
    lost: list[int] = field(default_factory=list)
    """Items whose claim was taken over before this run could store its result."""
    webhooks: list[int] = field(default_factory=list)
    """Webhook deliveries created because this run finished their batch (the caller sends them)."""


class _InFlight:
    """Items that a run_chunk of this process is working on right now, per worker id.

    A task that failed on a database error leaves its items `running` under this worker's id, and
    its retry usually lands in the same process. The retry may take them back at once (instead of
    waiting `stale_after_s` for the reaper) unless another run of this process still holds them:
    with the threads pool, or two Runtimes in one process, a duplicate delivery must not steal
    items from a run that is alive.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, set[int]] = {}

    def reserve(self, worker: str, item_ids: Sequence[int]) -> list[int]:
        with self._lock:
            busy = self._items.setdefault(worker, set())
            free = [i for i in dict.fromkeys(item_ids) if i not in busy]  # unique, in order
            busy.update(free)
            return free

    def release(self, worker: str, item_ids: Sequence[int]) -> None:
        with self._lock:
            self._items.get(worker, set()).difference_update(item_ids)


_in_flight = _InFlight()


def run_chunk(item_ids: Sequence[int], *, sessions: sessionmaker[Session], runtime: Runtime,
              on_item: Callable[[int, str], None] | None = None,
              on_rows: Callable[[int], None] | None = None) -> ChunkOutcome:
    """`on_item(item_id, status)` is called as each item's result is stored, and `on_rows(n)` as the
    engine's decodes finish rows (plans, spans, programs): the progress display between items."""
    worker = runtime.worker_id
    ids = _in_flight.reserve(worker, item_ids)
    try:
        with watching(on_rows):
            outcome = _run_reserved(ids, sessions=sessions, runtime=runtime, on_item=on_item)
    finally:
        _in_flight.release(worker, ids)
    outcome.skipped = [i for i in item_ids if i not in outcome.claimed]
    return outcome


def _run_reserved(item_ids: Sequence[int], *, sessions: sessionmaker[Session], runtime: Runtime,
                  on_item: Callable[[int, str], None] | None = None) -> ChunkOutcome:
    settings = runtime.settings
    worker = runtime.worker_id
    outcome = ChunkOutcome()
    stale_before = utcnow() - timedelta(seconds=settings.stale_after_s)
    with sessions.begin() as session:
        claims = claim_items(session, item_ids, worker, stale_before, reclaim_own=True)
    by_id = {c.item_id: c for c in claims}
    outcome.claimed = [c.item_id for c in claims]
    if not claims:
        return outcome

    jobs = _load_jobs(sessions, claims)

    def store(item_id: int, result: ItemOutcome) -> None:
        if _store_result(sessions, by_id[item_id], worker, result, outcome.webhooks):
            outcome.finished[item_id] = result.status
            if on_item is not None:
                on_item(item_id, result.status)
        else:
            log.warning("item %s: claim lost to another worker; this run's result was discarded", item_id)
            outcome.lost.append(item_id)

    with Heartbeat(sessions, claims, worker, settings.heartbeat_interval_s):
        _generate(jobs, runtime, store)
    return outcome


def _store_result(sessions: sessionmaker[Session], claim: Claim, worker: str, result: ItemOutcome,
                  webhooks: list[int]) -> bool:
    """One transaction per item: attempts + final status (+ the batch's webhook delivery when this was
    its last item), or nothing if the claim was lost."""
    with sessions() as session:
        try:
            stored = finish_item(
                session, claim, worker,
                status=ItemStatus(result.status),
                attempts=result.attempts,
                output=result.output,
                final_path=result.final_path,
                error=result.error,
            )
            if stored:
                delivery = announce_if_finished(session, claim.item_id)
                session.commit()
                if delivery is not None:
                    webhooks.append(delivery)
            else:
                session.rollback()
            return stored
        except BaseException:
            session.rollback()
            raise


def _load_jobs(sessions: sessionmaker[Session], claims: Sequence[Claim]) -> list[ItemJob]:
    runs = {c.item_id: c.run_no for c in claims}
    with sessions() as session:
        rows = session.execute(
            select(Item.id, Item.kind, Item.input, Item.params, Batch.mode)
            .join(Batch, Batch.id == Item.batch_id)
            .where(Item.id.in_(list(runs)))
            .order_by(Item.id)
        ).all()
    return [
        ItemJob(item_id=i, run_no=runs[i], kind=kind, input=inp, params=params or {},
                mode=(params or {}).get("mode", mode))
        for i, kind, inp, params, mode in rows
    ]


Settle = Callable[[int, ItemOutcome], None]
"""Takes an item's final outcome the moment it is known (the orchestrator stores it then)."""


def _generate(jobs: list[ItemJob], runtime: Runtime, settle: Settle | None = None) -> dict[int, ItemOutcome]:
    """Run every job down its path, settling each item as soon as nothing later can change it: an item
    whose first draft passes is stored before the chunk's retries and fallback run, so it is durable
    (and counted by the progress display) early. An exception fails the unsettled items of the
    affected group with `error`, never loses them. Returns every outcome, too."""
    hybrid_kinds = {k.strip() for k in runtime.settings.hybrid_kinds.split(",") if k.strip()}
    hybrid = [j for j in jobs if j.mode == "hybrid" and j.kind in hybrid_kinds]
    plain = [j for j in jobs if j.mode == "plain"]
    ar = [j for j in jobs if j not in hybrid and j not in plain]
    outcomes: dict[int, ItemOutcome] = {}

    def settle_once(item_id: int, outcome: ItemOutcome) -> None:
        outcomes[item_id] = outcome
        if settle is not None:
            settle(item_id, outcome)

    for group, runner in ((hybrid, _hybrid), (ar, _ar), (plain, _plain)):
        if not group:
            continue
        try:
            runner(group, runtime, settle_once)
        except Exception as e:  # noqa: BLE001 - stored on the items; the worker stays up
            log.exception("generation failed for items %s", [j.item_id for j in group])
            message = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}"
            for j in group:
                if j.item_id not in outcomes:
                    settle_once(j.item_id, ItemOutcome(status=ItemStatus.error.value, error=message))
    return outcomes


def _settle_passed(jobs: Sequence[ItemJob], attempts: dict[int, AttemptRecord], settle: Settle) -> list[ItemJob]:
    """Settle the jobs whose attempt passed; the others, which still have work ahead."""
    for j in jobs:
        if attempts[j.item_id].passed:
            settle(j.item_id, _final([attempts[j.item_id]]))
    return [j for j in jobs if not attempts[j.item_id].passed]


def _final(attempts: list[AttemptRecord]) -> ItemOutcome:
    last = attempts[-1]
    status = ItemStatus.done if last.passed else ItemStatus.flagged
    return ItemOutcome(status=status.value, output=last.output, final_path=last.path, attempts=attempts)


def _ar(jobs: list[ItemJob], runtime: Runtime, settle: Settle) -> None:
    drafted = run_planned(jobs, runtime, decoder="ar", path=AttemptPath.ar.value)
    pending = _settle_passed(jobs, drafted, settle)
    attempts = retry_failed(pending, drafted, runtime)
    for j in pending:
        settle(j.item_id, _final([attempts[j.item_id]]))


def _plain(jobs: list[ItemJob], runtime: Runtime, settle: Settle) -> None:
    attempts = run_plain(jobs, runtime)  # its retries are inside: the items settle together
    for j in jobs:
        settle(j.item_id, _final([attempts[j.item_id]]))


def _hybrid(jobs: list[ItemJob], runtime: Runtime, settle: Settle) -> None:
    # The hybrid attempt gets the same sampled retries as mode ar: with draft-and-verify its spans are
    # the AR model's own, so everything mode ar delivers, this attempt delivers too, and the fallback
    # (guidance-constrained, a different kind of second chance) only adds to it.
    drafted = run_planned(jobs, runtime, decoder="refiner", path=AttemptPath.hybrid.value)
    pending = _settle_passed(jobs, drafted, settle)
    first = retry_failed(pending, drafted, runtime)
    failed = _settle_passed(pending, first, settle)
    second = run_fallback(failed, {j.item_id: first[j.item_id].plan for j in failed}, runtime) if failed else {}
    for j in failed:
        settle(j.item_id, _final([first[j.item_id]] + ([second[j.item_id]] if j.item_id in second else [])))
