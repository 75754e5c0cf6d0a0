"""Shared benchmark plumbing: fixed prompts, peak RSS, the table + final JSON line convention."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import sys
from typing import Any, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Fixed prompts of the three content kinds (not tuned for the model; just representative).
BENCH_PROMPTS = [
    "Write one paragraph for the section 'Brewing green tea' of an article about tea for beginners.",
    "Write a product description paragraph for a stainless steel travel mug that keeps drinks hot for 6 hours.",
    "Write the body of a Python function count_vowels(text) that returns how many vowels are in text.",
    "Write one paragraph for the section 'Choosing a bike' of an article about commuting by bicycle.",
    "Write a product description paragraph for a USB-C desk lamp with five brightness levels.",
    "Write a Python function that returns the largest of three numbers, with a docstring.",
    "Write one paragraph for the section 'Getting started' of an article about composting at home.",
    "Write a product description paragraph for a 30 litre backpack made of recycled nylon.",
]


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def emit_json(result: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps(result, sort_keys=True))


class RssSampler:
    """Peak resident memory (MB) of this process while a block runs (sampled every 20 ms)."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak_mb = 0.0

    def __enter__(self) -> "RssSampler":
        import threading

        self._stop = threading.Event()
        self.peak_mb = self._proc.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)


def add_model_args(ap) -> None:
    """--model, --dtype and --adapter: every benchmark loads through `load_for_bench`, as the runtime does."""
    ap.add_argument("--model", default=None, help="model spec (default: HYBRIDGEN_MODEL, the embedded SmolLM2)")
    ap.add_argument("--dtype", default=None, help="auto, float32 or bfloat16 (default: HYBRIDGEN_DTYPE, auto)")
    ap.add_argument("--adapter", default=None, help="refiner adapter folder, 'default' or 'none' "
                                                    "(default: HYBRIDGEN_REFINER_ADAPTER)")


def load_for_bench(args, *, refiner: bool = True):
    """(settings, planner LoadedModel, refiner or None) through the runtime's own loaders."""
    import dataclasses

    from pipeline.runtime import Runtime
    from pipeline.settings import Settings

    settings = Settings.from_env()
    overrides = {k: v for k, v in (("model", getattr(args, "model", None)), ("dtype", getattr(args, "dtype", None)),
                                   ("refiner_adapter", getattr(args, "adapter", None))) if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    runtime = Runtime(settings)
    return settings, runtime.planner, runtime.refiner if refiner else None


@contextlib.contextmanager
def pipeline_run(mode: str, lines: Sequence[dict], base_settings, *, name: str | None = None):
    """Run job lines through the real orchestrator in `mode`, chunk by chunk as a worker would, on a
    temporary SQLite database; yields (sessions, item ids, seconds, runtime) while the database lives.
    The models load before the clock starts."""
    import tempfile
    import time
    from pathlib import Path

    from migrations import runner
    from pipeline.orchestrator import run_chunk
    from pipeline.runtime import Runtime
    from service.spec import parse_jsonl
    from service.storage.db import session_factory
    from service.submission import chunks, submit_batch

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite"
        runner.upgrade(url)
        settings = base_settings.replace(database_url=url, data_dir=Path(tmp))
        runtime = Runtime(settings)
        runtime.planner, runtime.refiner if mode == "hybrid" else None  # load before timing
        sessions = session_factory(url)
        parsed = parse_jsonl("\n".join(json.dumps(line) for line in lines))
        if mode != "plain":  # a worker has its plan constraints compiled: so does every mode here, before the clock
            warm_plan_constraints(parsed, runtime)
        ids = submit_batch(sessions, parsed, name=name or mode, mode=mode).new_item_ids
        t0 = time.perf_counter()
        for chunk in chunks(ids, settings.chunk_size):
            run_chunk(chunk, sessions=sessions, runtime=runtime)
        yield sessions, ids, time.perf_counter() - t0, runtime


def warm_plan_constraints(parsed, runtime) -> None:
    """Compile the plan regexes of these jobs (once per process; cached), so no mode pays for another's."""
    from generators.constrained import regex_index
    from pipeline.kinds import get_kind
    from pipeline.planner import plan_regex

    for job in parsed.jobs:
        regex_index(runtime.planner.tokenizer, plan_regex(get_kind(job.kind).plan_request(job.input)))
