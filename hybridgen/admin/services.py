"""What the review app's views need from outside: the database, and a way to queue items."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker

from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AppServices:
    settings: Settings
    sessions: sessionmaker[Session]
    enqueue: Callable[[Sequence[int]], int]
    """Put item ids on the queue; returns the number of tasks sent. Raises when the broker is down."""

    def try_enqueue(self, item_ids: Sequence[int]) -> bool:
        """Queue requeued items now if the broker answers; otherwise the reaper queues them later.

        The items are already `queued` in the database, so a broker outage delays them but
        cannot lose them.
        """
        if not item_ids:
            return True
        try:
            self.enqueue(item_ids)
            return True
        except Exception as e:  # noqa: BLE001 - any broker failure means "later", not "lost"
            log.warning("could not queue items %s now (%s); the reaper will queue them", list(item_ids), e)
            return False


def celery_enqueue(settings: Settings) -> Callable[[Sequence[int]], int]:
    """An enqueue function on the configured broker (the Celery app is built on first use)."""
    state: dict = {}

    def enqueue(item_ids: Sequence[int]) -> int:
        from workers.app import create_app
        from workers.enqueue import enqueue_items

        if "app" not in state:
            state["app"] = create_app(settings)
        return enqueue_items(state["app"], settings, list(item_ids))

    return enqueue
