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
        try:
            outcome = run_chunk(ids, sessions=session_factory(settings.resolved_database_url),
                                runtime=process_runtime(settings))
        finally:
            release_free_memory()
        log.info("chunk %s in process %d: finished %s, skipped %s, lost %s", ids, os.getpid(), outcome.finished,
                 outcome.skipped, outcome.lost)
        return {"finished": outcome.finished, "skipped": outcome.skipped, "lost": outcome.lost}
