"""Fault: PostgreSQL goes away mid-batch, then comes back.

The test database is taken down on its own, so the shared server stays up for other tests: new
connections are refused (ALLOW_CONNECTIONS false) and every open one is terminated, repeatedly, for
a few seconds; then connections are allowed again. To the worker this is a server restart: its
pooled connections are dead (pool_pre_ping replaces them), its heartbeats fail, its tasks hit
OperationalError and retry with backoff. Nothing may be lost or left `running`.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.storage.db import dispose_engines
from tests.fault_helpers import assert_nothing_lost, fault_env, n_final, submit_jobs, wait_all_final
from tests.helpers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

N_ITEMS = 12
OUTAGE_S = 8.0


def _admin(pg_url: str) -> psycopg.Connection:
    url = make_url(pg_url)
    return psycopg.connect(host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True)


def database_outage(pg_url: str, seconds: float) -> int:
    """Refuse and cut every connection to the test database for `seconds`; returns how many were cut."""
    name = make_url(pg_url).database
    cut = 0
    with _admin(pg_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
                cut += len(rows)
                time.sleep(0.2)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    return cut


def test_database_outage_mid_batch(tmp_path, pg_url, redis_url, model_cache_dir):
    # Reaper off and stale_after_s above the outage: recovery must come from the task retries alone.
    env = fault_env(tmp_path, model_cache_dir, database_url=pg_url, broker_url=redis_url, stale_after_s=60,
                    reaper_interval_s=0, chunk_size=2)
    submit_jobs(env, tmp_path, N_ITEMS)
    worker = WorkerProcess(env, tmp_path / "worker.log", "--concurrency", "1")
    try:
        wait_for(lambda: n_final(pg_url) >= 2, 180, "the first finished chunk", on_timeout=worker.log)
        dispose_engines()  # this test process's own connections die too
        cut = database_outage(pg_url, OUTAGE_S)
        back_at = time.monotonic()
        assert cut >= 1  # the worker held connections that were cut

        wait_all_final(pg_url, N_ITEMS, 240, worker)
        recovery_s = time.monotonic() - back_at
        assert worker.proc.poll() is None
    finally:
        worker.stop()

    assert_nothing_lost(pg_url, N_ITEMS)
    log = worker.log()
    assert "OperationalError" in log and "Retry in" in log, log[-4000:]
    print(f"{cut} connection(s) cut; all items final {recovery_s:.1f} s after the database came back")
