"""Put item ids on the queue, one task per chunk. Used by the CLI, the HTTP API and the reaper."""

from __future__ import annotations

import logging
from typing import Sequence

from celery import Celery

from pipeline.settings import Settings
from service.storage.db import session_scope
from service.storage.queries import mark_enqueued
from service.submission import chunks
from workers.tasks import PROCESS_CHUNK

log = logging.getLogger(__name__)


def enqueue_items(app: Celery, settings: Settings, item_ids: Sequence[int]) -> int:
    """Send one task per chunk; returns the number of tasks sent.

    Items are marked enqueued only after their task was accepted by the broker. A crash in
    between leaves them queued-but-not-enqueued, which the reaper finds and enqueues again
    (a duplicate delivery is harmless: tasks are idempotent).
    """
    sent = send_tasks(app, settings, item_ids)
    with session_scope(settings.resolved_database_url) as session:
        for start in range(0, len(item_ids), 1000):
            mark_enqueued(session, list(item_ids)[start:start + 1000])
    return sent


def send_tasks(app: Celery, settings: Settings, item_ids: Sequence[int]) -> int:
    """Send one task per chunk of ids, without touching the database; returns the number sent."""
    parts = chunks(list(item_ids), settings.chunk_size)
    with app.producer_or_acquire() as producer:  # one broker connection for all chunks
        for chunk in parts:
            app.send_task(PROCESS_CHUNK, args=[chunk], queue=settings.queue_name, producer=producer)
    return len(parts)


def queued_task_count(app: Celery, queue: str) -> int | None:
    """Messages waiting in the broker queue (not the ones a worker holds), or None if unknown.

    Works for Redis and the SQLAlchemy transport (kombu's virtual channels count them). The declare
    is not passive: on Redis a queue that was drained, or lost in a restart, does not exist, and
    must count as empty rather than fail.
    """
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            return int(conn.default_channel.queue_declare(queue=queue).message_count)
    except Exception as e:  # noqa: BLE001 - the broker is down: the caller decides what unknown means
        log.warning("could not count messages in queue %s: %s", queue, e)
        return None
