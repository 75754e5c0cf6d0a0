"""Put item ids on the queue, one task per chunk. Used by the CLI, the HTTP API and the reaper."""

from __future__ import annotations

from typing import Sequence

from celery import Celery

from pipeline.settings import Settings
from pipeline.storage.db import session_scope
from pipeline.storage.queries import mark_enqueued
from pipeline.submission import chunks
from workers.tasks import PROCESS_CHUNK


def enqueue_items(app: Celery, settings: Settings, item_ids: Sequence[int]) -> int:
    """Send one task per chunk; returns the number of tasks sent.

    Items are marked enqueued only after their task was accepted by the broker. A crash in
    between leaves them queued-but-not-enqueued, which the reaper finds and enqueues again
    (a duplicate delivery is harmless: tasks are idempotent).
    """
    parts = chunks(list(item_ids), settings.chunk_size)
    with app.producer_or_acquire() as producer:  # one broker connection for all chunks
        for chunk in parts:
            app.send_task(PROCESS_CHUNK, args=[chunk], queue=settings.queue_name, producer=producer)
    with session_scope(settings.resolved_database_url) as session:
        for start in range(0, len(item_ids), 1000):
            mark_enqueued(session, list(item_ids)[start:start + 1000])
    return len(parts)
