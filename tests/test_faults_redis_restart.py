"""Fault: Redis is killed mid-batch and comes back empty (no persistence), on a private redis-server.

Every queued task and every unacked delivery is gone. The worker must reconnect by itself, and its
reaper must notice that queued items have no task any more (sent long enough ago, broker queue
empty) and send them again. The chunk running at the time finishes in the database; its ack is lost
with the connection, which is harmless.
"""

from __future__ import annotations

import shutil
import time

import pytest
from sqlalchemy import func, select

from service.storage.db import session_factory
from service.storage.models import Item
from service.storage.types import utcnow
from tests.conftest import need_service
from tests.fault_helpers import PrivateRedis, assert_nothing_lost, fault_env, n_final, submit_jobs, wait_all_final
from tests.helpers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

N_ITEMS = 15  # five chunks of three: most are still queued in Redis when it dies


def test_redis_restart_loses_nothing(tmp_path, pg_url, model_cache_dir):
    need_service(shutil.which("redis-server") is not None, "the redis-server program (for a private server)")
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    env = fault_env(tmp_path, model_cache_dir, database_url=pg_url, broker_url=redis.url)
    worker = None
    try:
        submit_jobs(env, tmp_path, N_ITEMS)
        worker = WorkerProcess(env, tmp_path / "worker.log", "--concurrency", "1")
        wait_for(lambda: n_final(pg_url) >= 1, 180, "the first finished item", interval=0.2, on_timeout=worker.log)
        assert n_final(pg_url) < N_ITEMS

        redis.kill()
        time.sleep(2)  # the worker sees the connection drop and starts retrying
        redis.start()
        restarted_at, restarted_wall = time.monotonic(), utcnow()

        wait_all_final(pg_url, N_ITEMS, 240, worker)
        recovery_s = time.monotonic() - restarted_at
        assert worker.proc.poll() is None, "the worker died instead of reconnecting"
    finally:
        if worker:
            worker.stop()
        redis.kill()

    assert_nothing_lost(pg_url, N_ITEMS)
    with session_factory(pg_url)() as s:  # work really resumed through the new Redis
        after = s.execute(select(func.count()).where(Item.finished_at > restarted_wall)).scalar_one()
    assert after >= 3
    log = worker.log()
    assert "reaper: requeued 0 stale items, re-sent" in log
    print(f"all items final {recovery_s:.1f} s after Redis came back; {after} finished after the restart")
