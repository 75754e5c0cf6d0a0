"""Per-process runtime: the loaded models and this process's worker identity.

Models load lazily on first use, once per process. A Celery prefork worker builds its Runtime in
the child after fork (never in the parent), so each child owns its weights and its DB pool.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

from generators.loading import LoadedModel, load_model
from pipeline.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _planner: LoadedModel | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def planner(self) -> LoadedModel:
        """The AR model: planner, full-AR path and fallback."""
        with self._lock:
            if self._planner is None:
                s = self.settings
                self._planner = load_model(s.model, cache_dir=s.cache_dir, device=s.device, dtype=s.dtype)
            return self._planner
