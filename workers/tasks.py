"""Thin, named, idempotent tasks. They take ids and call the pipeline; no business logic here."""

from __future__ import annotations

import logging
import os

from celery import Celery
from sqlalchemy.exc import DBAPIError, OperationalError

from pipeline.settings import Settings
from service.storage.db import session_factory
from workers.memory import release_free_memory

log = logging.getLogger(__name__)

PROCESS_CHUNK = "hybridgen.process_chunk"
DELIVER_WEBHOOK = "hybridgen.deliver_webhook"

_runtime = None  # pipeline.runtime.Runtime, one per worker process, built lazily after fork


def process_runtime(settings: Settings):
    # Imported here: torch/transformers load in the worker child on its first task, not in
    # every process that merely sends tasks (submit, the HTTP API).
    from pipeline.runtime import Runtime

    global _runtime
    if _runtime is None:
        _runtime = Runtime(settings)
    return _runtime


def register_tasks(app: Celery) -> None:
    # Each task reads its settings from the app it runs under (`self.app`), never from this closure:
    # Celery 5.7 keeps the first callable registered under a task name for every later app in the
    # process, so a closure would hand a second app (another database, another queue) the first's.
    settings: Settings = app.conf.hybridgen_settings

    @app.task(
        name=PROCESS_CHUNK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        # Database blips (a PostgreSQL restart, dropped connections) retry with backoff.
        autoretry_for=(OperationalError, DBAPIError),
        retry_backoff=2,
        retry_backoff_max=60,
        retry_jitter=True,
        max_retries=20,
    )
    def process_chunk(self, item_ids: list[int]) -> dict:
        """Generate the given items. Safe to deliver twice: finished or running items are skipped."""
        from pipeline.orchestrator import run_chunk

        ids = [int(i) for i in item_ids]
        settings: Settings = self.app.conf.hybridgen_settings
        try:
            outcome = run_chunk(ids, sessions=session_factory(settings.resolved_database_url),
                                runtime=process_runtime(settings))
        finally:
            release_free_memory()
        log.info("chunk %s in process %d: finished %s, skipped %s, lost %s", ids, os.getpid(), outcome.finished,
                 outcome.skipped, outcome.lost)
        send_webhooks(self.app, settings, outcome.webhooks)
        return {"finished": outcome.finished, "skipped": outcome.skipped, "lost": outcome.lost,
                "webhooks": outcome.webhooks}

    @app.task(name=DELIVER_WEBHOOK, bind=True, acks_late=True, ignore_result=True,
              time_limit=int(settings.webhook_timeout_s) + 60)
    def deliver_webhook(self, delivery_id: int) -> dict:
        """Try one batch webhook delivery (skipped if delivered, or being tried elsewhere); on failure,
        send itself again after the backoff. The reaper re-sends deliveries whose task was lost."""
        from service.webhook import deliver

        settings: Settings = self.app.conf.hybridgen_settings
        result = deliver(session_factory(settings.resolved_database_url), int(delivery_id), settings.webhook)
        log.info("webhook delivery %s: %s after %s tries %s", delivery_id, result.status, result.attempts,
                 result.error or "")
        if result.status == "pending":
            send_webhooks(self.app, settings, [result.delivery_id], countdown=result.retry_in_s)
        return {"status": result.status, "attempts": result.attempts}


def send_webhooks(app: Celery, settings: Settings, delivery_ids: list[int], countdown: float | None = None) -> None:
    """Queue delivery tasks; a broker failure only delays them (the reaper finds due deliveries)."""
    for delivery_id in delivery_ids:
        try:
            app.send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=settings.queue_name, countdown=countdown)
        except Exception as e:  # noqa: BLE001 - the delivery row is stored; the reaper sends it later
            log.warning("could not queue webhook delivery %s now (%s); the reaper will", delivery_id, e)
