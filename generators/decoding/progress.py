"""Decode progress for whoever is watching: the number of rows that finish, as they finish.

A caller far above the engine (the CLI's progress display) watches a block of work with
`watching(callback)`; every engine decode inside it (plans, spans, fallback programs, plain replies)
reports its finished rows as its step loop drops them. A context variable carries the callback, so the
layers in between (paths, spans, decoders) pass nothing along, and threads decoding for other work
(worker threads) report to their own watcher or to none.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

RowsFinished = Callable[[int], None]
_watcher: ContextVar[RowsFinished | None] = ContextVar("rows_finished_watcher", default=None)


@contextmanager
def watching(callback: RowsFinished | None) -> Iterator[None]:
    token = _watcher.set(callback)
    try:
        yield
    finally:
        _watcher.reset(token)


def report_finished(n: int) -> None:
    callback = _watcher.get()
    if callback is not None and n:
        callback(n)
