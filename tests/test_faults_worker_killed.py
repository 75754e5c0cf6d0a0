"""Fault: a worker is SIGKILLed (its whole process group, like a lost machine) in the middle of a chunk.

- Redis + PostgreSQL, reaper off: the broker itself redelivers the unacked task after the
  visibility timeout, and the new delivery takes over the dead worker's stale claims.
- Embedded SQLite broker + database: the SQLite transport forgets a task its consumer held, so
  recovery is the reaper's job: it requeues the stale items and sends them again.

Either way every item ends with exactly one output and one attempt (tests/fault_helpers.py).
"""

from __future__ import annotations

import time

import pytest

from tests.fault_helpers import assert_nothing_lost, fault_env, n_final, running_ids, submit_jobs, wait_all_final
from tests.helpers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

N_ITEMS = 6  # two chunks of three


def _kill_mid_chunk_then_recover(env, url, tmp_path) -> tuple[list[int], float]:
    submit_jobs(env, tmp_path, N_ITEMS)
    first = WorkerProcess(env, tmp_path / "first.log", "--concurrency", "1")
    second = None
    try:
        wait_for(lambda: bool(running_ids(url)), 180, "the first worker to claim a chunk", interval=0.2,
                 on_timeout=first.log)
        claimed = running_ids(url)
        first.kill()  # SIGKILL to the process group: no clean shutdown, no ack, no release
        killed_at = time.monotonic()
        # Mid-chunk: the claim was taken, the result not stored (the first task also loads the model).
        assert set(running_ids(url)) == set(claimed) and n_final(url) < N_ITEMS

        second = WorkerProcess(env, tmp_path / "second.log", "--concurrency", "1")
        wait_all_final(url, N_ITEMS, 240, first, second)
        return claimed, time.monotonic() - killed_at
    finally:
        first.kill()
        if second:
            second.stop()


def test_redis_redelivers_a_killed_workers_task(tmp_path, pg_url, redis_url, model_cache_dir):
    # Visibility timeout well above stale_after_s: the redelivered task must find the claims stale
    # (the claim comes a little after the delivery, more so on a loaded machine).
    env = fault_env(tmp_path, model_cache_dir, database_url=pg_url, broker_url=redis_url,
                    visibility_timeout_s=20, stale_after_s=3, reaper_interval_s=0)
    claimed, recovery_s = _kill_mid_chunk_then_recover(env, pg_url, tmp_path)
    runs = assert_nothing_lost(pg_url, N_ITEMS)
    assert all(runs[i] == 2 for i in claimed)  # run 1 died with the worker, run 2 finished
    assert sorted(i for i, r in runs.items() if r == 1) == sorted(set(runs) - set(claimed))
    print(f"recovery after SIGKILL (redis redelivery): {recovery_s:.1f} s")


def test_embedded_reaper_recovers_a_killed_workers_chunk(tmp_path, model_cache_dir):
    env = fault_env(tmp_path, model_cache_dir, stale_after_s=3, reaper_interval_s=1)
    url = f"sqlite:///{tmp_path / 'data' / 'hybridgen.sqlite'}"
    claimed, recovery_s = _kill_mid_chunk_then_recover(env, url, tmp_path)
    runs = assert_nothing_lost(url, N_ITEMS)
    assert all(runs[i] == 2 for i in claimed)
    second_log = (tmp_path / "second.log").read_text()
    assert "reaper: requeued" in second_log and str(len(claimed)) + " stale item" in second_log
    print(f"recovery after SIGKILL (embedded, reaper): {recovery_s:.1f} s")
