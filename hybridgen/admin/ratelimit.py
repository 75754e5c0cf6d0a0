"""Failed-login throttling for the review app: exponential backoff, keyed so that guessing is slow
and the real user is not locked out.

A login attempt is checked against two keys, and every failure counts on both:

- its client address (`addr:`). After `free` failures each further failure doubles the wait
  (1 min, 2, 4, ... at most 1 h). One address guessing one name or many only slows itself down:
  the real user, from any other address, is not affected. The address comes from the TCP peer, or
  from X-Forwarded-For only when `hybridgen serve` trusts the proxy (HYBRIDGEN_FORWARDED_ALLOW_IPS),
  so a client cannot buy fresh tries by inventing that header.
- the username, in the form the user lookup compares (`service.accounts.normalize_username`):
  - for a browser that never logged in as that user (`name:`), a larger allowance, NAME_FACTOR x
    `free` failures from all addresses together, then the same backoff. This is what slows a
    guesser that spreads over many addresses.
  - for a browser that did (`device:`, OWASP's "device cookie": a signed cookie set at each
    successful login, see `device_cookie.py`), `free` failures of its own instead of the shared
    name key. While a name is under attack from elsewhere, its real user still logs in from a
    browser they used before; only logins from new browsers wait, and never for more than 1 h
    after the attack stops.

A success resets the key it was counted on besides the address (the username's, or the device's),
never the address key (an attacker holding one valid account must not clear the address that
guesses others). A key without failures for FORGET_S is forgotten. The state is in memory, per
serve process: several processes each keep their own, which multiplies the allowance by their
number (documented in docs/security-web.md).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

FIRST_WAIT_S = 60.0
MAX_WAIT_S = 3600.0
FORGET_S = 2 * MAX_WAIT_S  # longer than the longest wait, so waiting it out does not reset the count
NAME_FACTOR = 4
MAX_KEYS = 100_000  # bounds memory under a flood of distinct names or addresses


@dataclass
class Backoff:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, free: int, clock: Callable[[], float] = time.monotonic):
        self.free = max(1, free)
        self.clock = clock
        self._keys: dict[str, Backoff] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(username: str, address: str, device: str | None) -> tuple[str, str]:
        """The (address key, name-or-device key) of one attempt; `username` is already normalised."""
        return f"addr:{address}", f"device:{device}" if device else f"name:{username}"

    def retry_after(self, *keys: str) -> float:
        """Seconds until an attempt on all of `keys` may be made; 0 when none waits."""
        now = self.clock()
        with self._lock:
            return max((max(0.0, b.locked_until - now) for k in keys if (b := self._current(k, now))), default=0.0)

    def record_failure(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                b = self._current(key, now) or self._new(key)
                b.failures += 1
                b.last_failure = now
                over = b.failures - self._allowance(key)
                if over >= 0:
                    b.locked_until = now + min(MAX_WAIT_S, FIRST_WAIT_S * 2**min(over, 32))

    def reset(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)

    def _allowance(self, key: str) -> int:
        return self.free * NAME_FACTOR if key.startswith("name:") else self.free

    def _current(self, key: str, now: float) -> Backoff | None:
        b = self._keys.get(key)
        if b is not None and now - b.last_failure > FORGET_S:
            del self._keys[key]
            return None
        return b

    def _new(self, key: str) -> Backoff:
        if len(self._keys) >= MAX_KEYS:  # forget the keys whose last failure is oldest
            newest = sorted(self._keys.items(), key=lambda kv: kv[1].last_failure)[-(MAX_KEYS // 2):]
            self._keys = dict(newest)
        b = self._keys[key] = Backoff()
        return b
