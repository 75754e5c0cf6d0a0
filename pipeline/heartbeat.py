"""Keeps a worker's claims alive while it generates.

A background thread refreshes `heartbeat_at` of the claimed items every `interval` seconds. If
the worker dies, the heartbeat stops and the reaper requeues the items once they are stale.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from sqlalchemy.orm import Session, sessionmaker

from service.storage.queries import Claim, heartbeat

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, sessions: sessionmaker[Session], claims: Sequence[Claim], worker: str, interval_s: float):
        self._sessions = sessions
        self._claims = list(claims)
        self._worker = worker
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hybridgen-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        if self._claims:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._sessions.begin() as session:
                    heartbeat(session, self._claims, self._worker)
            except Exception as e:  # a DB blip must not kill generation; the next beat retries
                log.warning("heartbeat failed: %s", e)
