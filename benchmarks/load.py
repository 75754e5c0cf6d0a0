"""Load: accept 10,000 items, drain them with 2 worker processes, queue latency, worker RSS, nothing lost.

    python benchmarks/load.py [--quick] [--drain N] [--pg-admin-url URL] [--redis-url URL]
    python benchmarks/load.py --distinct 1000          (the distinct-input soak, below)

Production shape on this machine: PostgreSQL (a database of its own, dropped at the end) and Redis
(a db number of its own, flushed before and after), real `hybridgen submit` and `hybridgen worker`
processes, tiny random models (HYBRIDGEN_MODEL=tiny-llama, mode ar) so the numbers are about the
queue and the database, not the model.

- accept: wall time of `hybridgen submit` on a 10,000-line JSONL file (parse, store in one
  transaction, send 1,250 tasks, mark them enqueued), CLI start-up included. Target <= 10 s.
- drain: `hybridgen worker -c 2` (two worker processes, one torch thread each: the default share of
  2 cores), warmed up on a small batch first; items/s from the start of the submit to the last item
  final. The full run drains the 10,000 items it accepted; --quick deletes them and drains --drain
  items instead (default 600).
- latency: enqueue -> finish per item (a burst: every item is queued at once, so this is mostly
  time spent waiting behind the others), with enqueue -> start and start -> finish beside it.
- RSS: the worker children's resident memory after warm-up and after the drain (the largest child
  each time: children are replaced every HYBRIDGEN_WORKER_MAX_TASKS_PER_CHILD chunks, so the ones at
  the end may be new processes). Target growth <= 50 MB.
- lost: drained items not final when the drain ends (target 0); duplicate attempts are counted too.

Ends with one JSON line: submit_10k_s, drain_items_per_s, latency_p50_s, latency_p95_s, rss_growth_mb,
items_lost (plus details).

The distinct-input soak (`--distinct N`): N jobs whose inputs all differ (code signatures and
task names, product names and attribute sets, article topics and headings; a third of them code,
benchmarks/distinct_jobs.py), drained in hybrid mode (so the guidance fallback runs too) by
`hybridgen worker -c 2` with recycling off (HYBRIDGEN_WORKER_MAX_TASKS_PER_CHILD=0: the fix is
measured, not the recycling). The model is tiny-llama-smollm2-vocab: a tiny random model with the
default model's 49k tokenizer, so every constraint index is real size. After a warm-up batch of
other distinct jobs, it samples each worker child's RSS against items finished and reports the
growth per 100 items (end minus warm-up, and the least-squares slope). Target: growth <= 50 MB
over 1,000 items per child. Ends with one JSON line: distinct_items, code_items,
rss_growth_mb (largest child), rss_growth_mb_per_100_items, rss_slope_mb_per_100_items, items_lost.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit_json, machine, print_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ACCEPT_ITEMS = 10_000
FINAL = ("done", "flagged", "error")


def jobs_file(path: Path, n: int, tag: str) -> Path:
    """n product jobs (one kind: a chunk is then one generation batch, as in a real batch file)."""
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"kind": "product", "key": f"{tag}-{i}", "input": {
                "name": f"{tag} item {i}", "attributes": {"colour": ["red", "blue", "green"][i % 3], "size": i % 50}}})
                    + "\n")
    return path


@contextmanager
def services(pg_admin_url: str, redis_url: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database and an empty Redis db; both cleaned up afterwards."""
    import psycopg
    import redis
    from sqlalchemy.engine import make_url

    admin_url = make_url(pg_admin_url)
    name = f"hybridgen_load_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(host=admin_url.host, port=admin_url.port or 5432, user=admin_url.username,
                            password=admin_url.password, dbname=admin_url.database or "postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    queue = redis.Redis.from_url(redis_url)
    queue.flushdb()
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False), redis_url
    finally:
        from service.storage.db import dispose_engines

        dispose_engines()
        queue.flushdb()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def cli_env(db_url: str, broker_url: str, data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)  # hybridgen refuses a data folder that does not exist
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDGEN_")}
    env.update({
        "HYBRIDGEN_DATABASE_URL": db_url, "HYBRIDGEN_BROKER_URL": broker_url, "HYBRIDGEN_DATA_DIR": str(data_dir),
        "HYBRIDGEN_MODEL": "tiny-llama", "HYBRIDGEN_NLI_MODEL": "none", "HYBRIDGEN_DEFAULT_MODE": "ar",
        "HYBRIDGEN_MAX_NEW_TOKENS": "16", "HYBRIDGEN_QUEUE_NAME": f"hg-load-{uuid.uuid4().hex[:6]}",
        "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
    })
    return env


def submit(env: dict[str, str], path: Path) -> tuple[float, int]:
    """`hybridgen submit` as a user runs it; returns (wall seconds, batch id)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "hybridgen", "submit", str(path)], env=env, cwd=REPO,
                         capture_output=True, timeout=600)
    seconds = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(f"submit failed: {out.stderr.decode()}")
    return seconds, int(out.stdout.decode().strip())


class Worker:
    """`hybridgen worker -c N`: N prefork children, each with its own models and cores // N torch threads."""

    def __init__(self, env: dict[str, str], log: Path, processes: int):
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "hybridgen", "worker", "-c", str(processes)],
                                     env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def child_rss_mb(self) -> dict[int, float]:
        """Resident memory of each prefork child (they run the tasks and hold the models), by pid."""
        import psutil

        return {c.pid: c.memory_info().rss / 2**20 for c in psutil.Process(self.proc.pid).children()}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self._log.close()


def batch_state(db_url: str, batch_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from service.storage.db import session_factory
    from service.storage.models import Item

    with session_factory(db_url)() as s:
        return dict(s.execute(select(Item.status, func.count()).where(Item.batch_id == batch_id)
                              .group_by(Item.status)).all())


def wait_final(db_url: str, batch_id: int, n: int, timeout: float, on_progress=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(batch_state(db_url, batch_id).get(s, 0) for s in FINAL)
        if on_progress:
            on_progress(done)
        if done >= n:
            return True
        time.sleep(1.0)
    return False


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timings(db_url: str, batch_id: int) -> dict[str, list[float]]:
    from sqlalchemy import func, select

    from service.storage.db import session_factory
    from service.storage.models import Attempt, Item

    with session_factory(db_url)() as s:
        rows = s.execute(select(Item.enqueued_at, Item.started_at, Item.finished_at)
                         .where(Item.batch_id == batch_id, Item.finished_at.is_not(None))).all()
        attempts = s.execute(select(func.count()).select_from(Attempt).join(Item, Item.id == Attempt.item_id)
                             .where(Item.batch_id == batch_id)).scalar_one()
    return {
        "total": [(f - e).total_seconds() for e, _, f in rows],
        "wait": [(st - e).total_seconds() for e, st, _ in rows],
        "service": [(f - st).total_seconds() for _, st, f in rows],
        "attempts": [attempts],
    }


def delete_batch(db_url: str, batch_id: int) -> None:
    from sqlalchemy import delete

    from service.storage.db import session_scope
    from service.storage.models import Batch

    with session_scope(db_url) as s:
        s.execute(delete(Batch).where(Batch.id == batch_id))  # items and attempts cascade


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="accept 10k, but drain only --drain items (a few minutes)")
    ap.add_argument("--drain", type=int, default=600, help="items to drain with --quick")
    ap.add_argument("--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="a Redis db of its own: it is flushed")
    ap.add_argument("--distinct", type=int, default=0, metavar="N",
                    help="run the distinct-input soak on N items instead (hybrid mode, 49k tokenizer, recycling off)")
    ap.add_argument("--max-tasks-per-child", type=int, default=None,
                    help="HYBRIDGEN_WORKER_MAX_TASKS_PER_CHILD for the workers (default: the setting's default; 0: never)")
    args = ap.parse_args()
    if args.distinct:
        if args.distinct < 100:
            raise SystemExit("load benchmark: --distinct needs at least 100 items to measure growth per 100")
        distinct_soak(args)
        return

    import redis

    from migrations import runner

    load_before = os.getloadavg()

    with services(args.pg_admin_url, args.redis_url) as (db_url, broker_url), \
            tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = cli_env(db_url, broker_url, tmp_path / "data")
        if args.max_tasks_per_child is not None:
            env["HYBRIDGEN_WORKER_MAX_TASKS_PER_CHILD"] = str(args.max_tasks_per_child)
        from pipeline.settings import Settings

        recycle = Settings.from_env({k: v for k, v in env.items() if k.startswith("HYBRIDGEN_")}).worker_max_tasks_per_child
        runner.upgrade(db_url)
        accept_file = jobs_file(tmp_path / "accept.jsonl", ACCEPT_ITEMS, "load")

        worker = None
        try:
            if args.quick:  # accept 10k with no worker running, then drop them: only --drain items are drained
                submit_s, accept_batch = submit(env, accept_file)
                delete_batch(db_url, accept_batch)
                redis.Redis.from_url(broker_url).flushdb()
            worker = Worker(env, tmp_path / "worker.log", processes=2)
            warm_t0 = time.perf_counter()
            _, warm_batch = submit(env, jobs_file(tmp_path / "warm.jsonl", 32, "warm"))
            if not wait_final(db_url, warm_batch, 32, 600):
                raise SystemExit("the worker did not finish the warm-up batch:\n" + worker.log()[-3000:])
            warm_s = time.perf_counter() - warm_t0  # includes the worker's start and model loads
            rss_start = worker.child_rss_mb()

            if args.quick:
                n = args.drain
                t0 = time.perf_counter()
                _, batch = submit(env, jobs_file(tmp_path / "drain.jsonl", n, "drain"))
            else:
                n = ACCEPT_ITEMS
                t0 = time.perf_counter()
                submit_s, batch = submit(env, accept_file)
            rss_peak = dict(rss_start)

            def sample(_done: int) -> None:
                for pid, mb in worker.child_rss_mb().items():
                    rss_peak[pid] = max(rss_peak.get(pid, 0.0), mb)

            finished = wait_final(db_url, batch, n, timeout=300 + n * 2.0, on_progress=sample)
            drain_s = time.perf_counter() - t0
            rss_end = worker.child_rss_mb()
            alive = worker.proc.poll() is None
        finally:
            if worker:
                worker.stop()
        logs = worker.log()

        state = batch_state(db_url, batch)
        t = timings(db_url, batch)
        finals = sum(state.get(s, 0) for s in FINAL)
        items_lost = n - finals
        duplicate_attempts = t["attempts"][0] - finals  # mode ar: one attempt per finished item
        # Children recycled during the drain show up as new pids: compare the worker's largest child.
        growth = max(rss_end.values()) - max(rss_start.values())

    print(f"machine: {machine()}; PostgreSQL + Redis; `hybridgen worker -c 2` (2 processes, 1 torch thread each), "
          f"tiny-llama, mode ar, chunk 8; {'quick: ' if args.quick else ''}{n} items drained; "
          f"load average at the start {load_before[0]:.2f} and end {os.getloadavg()[0]:.2f} "
          "(other work shares the CPU)")
    print_table("accept and drain", ["metric", "value"], [
        ("submit 10,000 items (CLI wall time, s)", round(submit_s, 2)),
        ("worker start + warm-up batch of 32 (s)", round(warm_s, 1)),
        (f"drain {n} items (s)", round(drain_s, 1)),
        ("drain items/s", round(n / drain_s, 2)),
        ("items final / lost", f"{finals} / {items_lost}"),
        ("duplicate attempts", duplicate_attempts),
        ("items in error", state.get("error", 0)),
        ("worker alive at the end", alive),
        (f"worker child processes (pids seen; recycled every {recycle} chunks)", len(rss_peak)),
        ("reaper re-sends logged", logs.count("reaper: requeued")),
    ])
    print_table("queue latency (s, per item; burst: all queued at once)", ["measure", "p50", "p95", "max"], [
        (name, round(percentile(t[key], 0.5), 2), round(percentile(t[key], 0.95), 2),
         round(max(t[key], default=float("nan")), 2))
        for name, key in (("enqueue -> finish", "total"), ("enqueue -> start", "wait"), ("start -> finish", "service"))
    ])
    def mb(values: dict[int, float], pid: int) -> float | str:
        return round(values[pid], 1) if pid in values else "-"

    print_table("worker child RSS (MB; '-': the child was not alive then)",
                ["child pid", "after warm-up", "peak seen", "after drain"],
                [(pid, mb(rss_start, pid), mb(rss_peak, pid), mb(rss_end, pid))
                 for pid in sorted(set(rss_start) | set(rss_end))])
    print(f"largest child: {max(rss_start.values()):.1f} MB after warm-up, {max(rss_end.values()):.1f} MB after the "
          f"drain: growth {growth:.1f} MB; {len(rss_peak) - len(rss_start)} child(ren) replaced during the drain")
    emit_json({
        "submit_10k_s": round(submit_s, 2),
        "drain_items": n,
        "drain_items_per_s": round(n / drain_s, 2),
        "latency_p50_s": round(percentile(t["total"], 0.5), 2),
        "latency_p95_s": round(percentile(t["total"], 0.95), 2),
        "latency_measure": "enqueue->finish",
        "wait_p95_s": round(percentile(t["wait"], 0.95), 2),
        "service_p50_s": round(percentile(t["service"], 0.5), 2),
        "rss_growth_mb": round(growth, 1),
        "rss_after_warmup_mb": round(max(rss_start.values()), 1),
        "rss_after_drain_mb": round(max(rss_end.values()), 1),
        "children_replaced": len(rss_peak) - len(rss_start),
        "max_tasks_per_child": recycle,
        "items_lost": items_lost,
        "duplicate_attempts": duplicate_attempts,
        "drained_all": finished,
        "quick": args.quick,
    })


def distinct_soak(args) -> None:
    from benchmarks.distinct_jobs import distinct_jobs
    from migrations import runner

    n, warm_n = args.distinct, 48
    with services(args.pg_admin_url, args.redis_url) as (db_url, broker_url), tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = cli_env(db_url, broker_url, tmp_path / "data")
        env.update({"HYBRIDGEN_MODEL": "tiny-llama-smollm2-vocab", "HYBRIDGEN_DEFAULT_MODE": "hybrid",
                    "HYBRIDGEN_MAX_NEW_TOKENS": "8", "HYBRIDGEN_WORKER_MAX_TASKS_PER_CHILD": "0"})
        runner.upgrade(db_url)

        def write(jobs: list[dict], name: str) -> Path:
            path = tmp_path / name
            path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
            return path

        soak_jobs = distinct_jobs(n, start=10 * warm_n)
        worker = Worker(env, tmp_path / "worker.log", processes=2)
        samples: list[tuple[int, dict[int, float]]] = []
        try:
            _, warm_batch = submit(env, write(distinct_jobs(warm_n), "warm.jsonl"))
            if not wait_final(db_url, warm_batch, warm_n, 900):
                raise SystemExit("the worker did not finish the warm-up batch:\n" + worker.log()[-3000:])
            samples.append((0, worker.child_rss_mb()))
            t0 = time.perf_counter()
            _, batch = submit(env, write(soak_jobs, "soak.jsonl"))

            def sample(done: int) -> None:
                if done - samples[-1][0] >= max(10, n // 40):
                    samples.append((done, worker.child_rss_mb()))

            finished = wait_final(db_url, batch, n, timeout=600 + n * 6.0, on_progress=sample)
            drain_s = time.perf_counter() - t0
            samples.append((sum(batch_state(db_url, batch).get(s, 0) for s in FINAL), worker.child_rss_mb()))
            alive = worker.proc.poll() is None
        finally:
            worker.stop()
        state = batch_state(db_url, batch)

    finals = sum(state.get(s, 0) for s in FINAL)
    pids = sorted(samples[0][1])
    rows = [(done, *[round(rss.get(pid, float("nan")), 1) for pid in pids]) for done, rss in samples]
    print(f"machine: {machine()}; PostgreSQL + Redis; `hybridgen worker -c 2`, recycling off; "
          f"tiny-llama-smollm2-vocab (49k tokenizer), mode hybrid; {n} distinct items "
          f"({sum(j['kind'] == 'code' for j in soak_jobs)} code) after {warm_n} distinct warm-up items")
    print_table("worker child RSS (MB) by items finished", ["items final", *[f"child {p}" for p in pids]], rows)

    def growth(pid: int) -> float:
        return samples[-1][1].get(pid, float("nan")) - samples[0][1][pid]

    def slope(pid: int) -> float:
        points = [(done, rss[pid]) for done, rss in samples if pid in rss]
        mx = sum(x for x, _ in points) / len(points)
        my = sum(y for _, y in points) / len(points)
        var = sum((x - mx) ** 2 for x, _ in points)
        return 100 * sum((x - mx) * (y - my) for x, y in points) / var if var else float("nan")

    largest = max(pids, key=lambda p: samples[-1][1].get(p, 0.0))
    print_table("growth per child", ["child", "after warm-up MB", "at the end MB", "growth MB", "per 100 items (end)",
                                     "per 100 items (slope)"],
                [(pid, round(samples[0][1][pid], 1), round(samples[-1][1].get(pid, float("nan")), 1),
                  round(growth(pid), 1), round(growth(pid) / n * 100, 2), round(slope(pid), 2)) for pid in pids])
    print(f"items final / lost: {finals} / {n - finals}; in error: {state.get('error', 0)}; worker alive: {alive}; "
          f"drain {drain_s:.0f} s ({n / drain_s:.2f} items/s)")
    emit_json({"distinct_items": n, "code_items": sum(j["kind"] == "code" for j in soak_jobs),
               "rss_growth_mb": round(growth(largest), 1),
               "rss_growth_mb_per_100_items": round(growth(largest) / n * 100, 2),
               "rss_slope_mb_per_100_items": round(slope(largest), 2),
               "rss_after_warmup_mb": round(samples[0][1][largest], 1), "items_lost": n - finals,
               "items_error": state.get("error", 0), "drained_all": finished, "drain_s": round(drain_s, 1),
               "max_tasks_per_child": 0})


if __name__ == "__main__":
    main()
