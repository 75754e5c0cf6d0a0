"""Failed-login rate limiting: a sliding window of failures per key (username, client address).

In memory, per `serve` process: enough to make password guessing against one server slow
(5 guesses a minute instead of thousands). Several serve processes each keep their own window,
which multiplies the allowance by the number of processes; documented in the README.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class FailureWindow:
    def __init__(self, max_failures: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of `keys` may try again; 0 when none is locked out."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._prune(key, now)
                if len(q) >= self.max_failures:
                    wait = max(wait, q[0] + self.window_s - now)
        return wait

    def record_failure(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._prune(key, now).append(now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(self._failures) > 100_000:  # bound memory under a flood of distinct keys
            self._failures = {k: v for k, v in self._failures.items() if v}
        return q
