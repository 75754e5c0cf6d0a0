"""The reaper: no item is ever silently stuck.

One pass (`reap_once`):
1. running items whose heartbeat is older than `stale_after_s` go back to queued (their worker died,
   or lost the database for longer than that);
2. queued items that no task carries are sent again (see `take_orphans`): the ones just requeued,
   the ones never sent (a submitter died between storing and queueing), and the ones whose task was
   lost. A task is presumed lost when it was sent `reenqueue_after_s` ago and the broker queue is
   empty (Redis restarted without persistence, a worker killed while holding it on the SQLite
   broker), or `visibility_timeout_s` ago whatever the queue holds (a queue that never drains);
3. on the embedded SQLite broker, messages already delivered are deleted (kombu keeps them forever);
4. batch webhook deliveries that are due but were not tried (their task was lost, or could not be sent)
   are sent again.

Duplicates are harmless: a task claims its items atomically and skips what is running or final.
Every `hybridgen worker` runs a pass every `reaper_interval_s` in a daemon thread of its main
process; `hybridgen reap` runs one pass (or a loop) by hand, e.g. from cron with no worker up.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from celery import Celery

from pipeline.settings import Settings
from service.storage.db import session_scope
from service.storage.queries import reap_stale, release_orphans, take_orphans
from service.storage.types import utcnow
from workers import embedded_broker
from service.webhook import take_due_deliveries
from workers.enqueue import queued_task_count, send_tasks
from workers.tasks import send_webhooks

log = logging.getLogger(__name__)

MAX_ITEMS_PER_PASS = 10_000


@dataclass
class ReapReport:
    stale_requeued: list[int] = field(default_factory=list)
    """Running items with a stale heartbeat, put back to queued."""
    resent: list[int] = field(default_factory=list)
    """Queued items that no task carried; their tasks were sent again."""
    tasks_sent: int = 0
    broker_queue: int | None = None
    """Messages waiting in the broker queue when the pass looked (None: could not tell)."""
    pruned_messages: int = 0
    """Delivered messages deleted from the embedded SQLite broker (it never deletes them itself)."""
    webhooks_resent: list[int] = field(default_factory=list)
    """Webhook deliveries due for longer than REENQUEUE_AFTER_S, whose tasks were sent again."""

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"

        return (f"requeued {n(len(self.stale_requeued), 'stale item')}, re-sent {n(len(self.resent), 'item')} "
                f"in {n(self.tasks_sent, 'task')}")


def reap_once(settings: Settings, app: Celery) -> ReapReport:
    url = settings.resolved_database_url
    now = utcnow()
    report = ReapReport()
    with session_scope(url) as session:
        report.stale_requeued = reap_stale(session, now - timedelta(seconds=settings.stale_after_s))

    report.broker_queue = queued_task_count(app, settings.queue_name)
    lost_after = settings.reenqueue_after_s if report.broker_queue == 0 else max(
        settings.reenqueue_after_s, settings.visibility_timeout_s)
    with session_scope(url) as session:
        report.resent = take_orphans(
            session,
            unenqueued_before=now - timedelta(seconds=settings.reenqueue_after_s),
            lost_before=now - timedelta(seconds=lost_after),
            include=report.stale_requeued,
            limit=MAX_ITEMS_PER_PASS,
        )
    if report.resent:
        try:
            report.tasks_sent = send_tasks(app, settings, report.resent)
        except BaseException:
            # Not sent: make them takeable again at once instead of after another reenqueue_after_s.
            with session_scope(url) as session:
                release_orphans(session, report.resent)
            raise
    report.pruned_messages = embedded_broker.prune_delivered(settings.resolved_broker_url)
    with session_scope(url) as session:
        # Due for a while and still pending: no task is carrying it (a duplicate task would be harmless:
        # a try claims the row first).
        report.webhooks_resent = take_due_deliveries(session, now - timedelta(seconds=settings.reenqueue_after_s))
    send_webhooks(app, settings, report.webhooks_resent)
    if report.stale_requeued or report.resent or report.webhooks_resent:
        log.warning("reaper: %s (stale: %s)", report, report.stale_requeued[:20])
    return report


class ReaperThread(threading.Thread):
    """Runs `reap_once` every `interval_s` (with jitter, so many workers do not reap in step)."""

    def __init__(self, settings: Settings, app: Celery, interval_s: float):
        super().__init__(name="hybridgen-reaper", daemon=True)
        self._settings = settings
        self._app = app
        self._interval = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        delay = min(self._interval, 5.0)  # a first pass soon after start: recover from a full restart
        while not self.stopped.wait(delay):
            try:
                reap_once(self._settings, self._app)
            except Exception as e:  # noqa: BLE001 - database or broker down: try again next round
                log.warning("reaper pass failed: %s: %s", type(e).__name__, e)
            delay = self._interval * random.uniform(0.8, 1.2)


def start_in_worker(app: Celery) -> ReaperThread | None:
    """Start the periodic reaper in a worker's main process (called from the worker_ready signal)."""
    settings: Settings | None = getattr(app.conf, "hybridgen_settings", None)
    if settings is None or settings.reaper_interval_s <= 0:
        return None
    thread = ReaperThread(settings, app, settings.reaper_interval_s)
    thread.start()
    log.info("reaper: every %.0f s (stale after %.0f s)", settings.reaper_interval_s, settings.stale_after_s)
    return thread
