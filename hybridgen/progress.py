"""Progress of a long command (`run`, `bench`): a bar in a terminal, plain lines elsewhere, or nothing.

Output that is not a terminal (CI, nohup, a log file) gets one line every `interval_s` seconds with
done/total, the rate and the ETA, from a timer thread, so that a chunk that takes minutes still shows
the run is alive; `interval_s=0` prints a line per finished item instead. Items are counted as the
orchestrator stores them (`run_chunk(on_item=...)`); between items, the rows the engine finishes
(`run_chunk(on_rows=...)`: plans, sections, function bodies, fallback programs) show that the chunk
under way is moving.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hybridgen.words import duration, plural


class ItemProgress:
    """Counts finished items of `total`; use as a context manager around the work."""

    def __init__(self, console: Console, total: int, *, interval_s: float, quiet: bool = False,
                 label: str = "items") -> None:
        self.console = console
        self.total = total
        self.interval_s = interval_s
        self.label = label
        self.done = 0
        self.rows = 0
        """Generations (decode rows) finished so far: progress inside a chunk, before its items are stored."""
        self._mode = "quiet" if quiet else ("bar" if console.is_terminal else "lines")
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> "ItemProgress":
        self._started = time.monotonic()
        if self._mode == "bar":
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        elif self._mode == "lines":
            self._line()
            if self.interval_s > 0:
                self._timer = threading.Thread(target=self._tick, name="progress-lines", daemon=True)
                self._timer.start()
        return self

    def describe(self, label: str) -> None:
        """What is being worked on now, e.g. `batch 3`."""
        self.label = label
        if self._bar is not None:
            self._bar.update(self._task, description=label)

    def advance(self, n: int = 1) -> None:
        if n == 0:
            return
        with self._lock:
            self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)
        elif self._mode == "lines" and self.interval_s == 0:
            self._line()

    def rows_finished(self, n: int) -> None:
        with self._lock:
            self.rows += n
            rows = self.rows
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.label} · {plural(rows, 'generation')}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
        elif self._mode == "lines" and exc_type is None and self.interval_s > 0:
            self._line()  # the last count, whenever the timer last printed

    def status_line(self) -> str:
        """`batch 3: 12/40 items (30%), 41 items/hour, ETA 0:40:57, 0:17:33 elapsed, 96 generations`."""
        with self._lock:
            done, rows = self.done, self.rows
        elapsed = time.monotonic() - self._started
        share = f" ({done / self.total:.0%})" if self.total else ""
        if done and elapsed > 0:
            per_s = done / elapsed
            speed = f"{per_s * 3600:.0f} items/hour, ETA {duration((self.total - done) / per_s)}"
        else:
            speed = "rate and ETA after the first item"
        generated = f", {plural(rows, 'generation')}" if rows else ""
        return f"{self.label}: {done}/{plural(self.total, 'item')}{share}, {speed}, {duration(elapsed)} elapsed{generated}"

    def _line(self) -> None:
        self.console.print(self.status_line(), markup=False, highlight=False, soft_wrap=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._line()
