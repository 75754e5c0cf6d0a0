"""A real `hybridgen worker` process consuming real brokers, end to end with a tiny model.

- Redis broker + PostgreSQL database (production shape)
- the embedded SQLite broker + SQLite database (laptop shape)
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import func, select

from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Attempt, Item
from tests.helpers import WorkerProcess, cli_env, run_cli, wait_for

pytestmark = pytest.mark.integration

JOBS = [
    {"kind": "article", "input": {"topic": "tea"}, "key": "w-a"},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red"}}, "key": "w-p"},
    {"kind": "code", "input": {"prompt": "def f(): ..."}, "key": "w-c"},
    {"kind": "article", "input": {"topic": "coffee"}, "key": "w-a2"},
]


def final_counts(url: str) -> dict[str, int]:
    with session_factory(url)() as s:
        return dict(s.execute(select(Item.status, func.count()).group_by(Item.status)).all())


def attempt_count(url: str) -> int:
    with session_factory(url)() as s:
        return s.execute(select(func.count()).select_from(Attempt)).scalar_one()


def all_final(url: str, n: int) -> bool:
    counts = final_counts(url)
    return sum(counts.get(s, 0) for s in ("done", "flagged", "error")) == n


def chunk_processes(worker_log: str) -> set[str]:
    """pids of the worker processes that logged a finished chunk."""
    return set(re.findall(r"chunk \[[\d, ]+\] in process (\d+):", worker_log))


def _end_to_end(env, db_url, tmp_path) -> str:
    """Returns the worker's log."""
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in JOBS))
    up = run_cli(["db", "upgrade"], env)
    assert up.returncode == 0, up.stderr.decode()
    sub = run_cli(["submit", str(jobs)], env)
    assert sub.returncode == 0, sub.stderr.decode()
    batch_id = int(sub.stdout.decode().strip())
    assert "4 new items" in sub.stderr.decode() and "2 tasks queued" in sub.stderr.decode()

    worker = WorkerProcess(env, tmp_path / "worker.log", "--concurrency", "1")
    try:
        wait_for(lambda: all_final(db_url, 4), 240, "the worker to finish 4 items", on_timeout=worker.log)
        assert final_counts(db_url).get("error", 0) == 0, worker.log()
        assert attempt_count(db_url) == 4

        # Redelivery of finished work: the same chunk again, then a sentinel batch behind it
        # (prefetch 1, one process: tasks run in order). The duplicate must add no attempt.
        from workers.app import create_app
        from workers.tasks import PROCESS_CHUNK

        settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("HYBRIDGEN_")})
        with session_factory(db_url)() as s:
            ids = s.execute(select(Item.id).order_by(Item.id)).scalars().all()
        create_app(settings).send_task(PROCESS_CHUNK, args=[ids[:2]], queue=settings.queue_name)
        sentinel = tmp_path / "sentinel.jsonl"
        sentinel.write_text(json.dumps({"kind": "article", "input": {"topic": "sentinel"}}))
        assert run_cli(["submit", str(sentinel)], env).returncode == 0
        wait_for(lambda: all_final(db_url, 5), 120, "the sentinel item", on_timeout=worker.log)
        assert attempt_count(db_url) == 5
        with session_factory(db_url)() as s:
            assert s.execute(select(func.max(Item.run_count))).scalar_one() == 1
    finally:
        worker.stop()
    log = worker.log()

    status = run_cli(["status", str(batch_id), "--json"], env)
    summary = json.loads(status.stdout)
    assert summary["total"] == 4 and summary["finished"] == 4 and summary["paths"]["ar"]["attempts"] == 4
    out = tmp_path / "out.jsonl"
    exported = run_cli(["export", str(batch_id), "-o", str(out), "--include-flagged"], env)
    assert exported.returncode == 0, exported.stderr.decode()
    records = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["key"] for r in records] == ["w-a", "w-p", "w-c", "w-a2"]
    assert all(r["decision"] == "unreviewed-pass" and r["output"] or r["decision"] == "unreviewed-flagged"
               for r in records)
    assert all(r["reports"] for r in records)  # every result carries its validator reports
    return log


def test_redis_broker_and_postgres(tmp_path, redis_url, pg_url, model_cache_dir):
    # Every chunk in a fresh child process (worker_max_tasks_per_child=1): recycling, which bounds
    # worker memory, must lose and duplicate nothing.
    env = cli_env(database_url=pg_url, broker_url=redis_url, model="tiny-llama", max_new_tokens=8, nli_model="none", default_mode="ar",
                  chunk_size=2, queue_name=f"hg-test-{uuid.uuid4().hex[:6]}", data_dir=tmp_path / "data",
                  cache_dir=model_cache_dir, worker_max_tasks_per_child=1)
    log = _end_to_end(env, pg_url, tmp_path)
    # the batch's two chunks, the duplicate delivery and the sentinel: four tasks, four children
    assert len(chunk_processes(log)) == 4, log


def test_embedded_sqlite_broker_and_database(tmp_path, model_cache_dir):
    data = tmp_path / "data"
    env = cli_env(data_dir=data, model="tiny-llama", max_new_tokens=8, nli_model="none", default_mode="ar", chunk_size=2,
                  broker_poll_interval_s=0.1, cache_dir=model_cache_dir)
    _end_to_end(env, f"sqlite:///{data / 'hybridgen.sqlite'}", tmp_path)
