"""Shared pieces of the fault tests: a private Redis server, fault-test settings, and the invariant
every fault test ends with (`assert_nothing_lost`)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from service.storage.db import dispose_engines, session_factory
from service.storage.models import Attempt, Item
from tests.helpers import cli_env, run_cli, wait_for

FINAL = ("done", "flagged", "error")


def fault_env(tmp_path: Path, cache_dir: Path, **overrides) -> dict[str, str]:
    """Tiny model, short heartbeats and a private queue: faults are noticed in seconds, not minutes."""
    settings = dict(
        model="tiny-llama", max_new_tokens=8, nli_model="none", default_mode="ar", chunk_size=3,
        heartbeat_interval_s=0.5, stale_after_s=4, reaper_interval_s=1, reenqueue_after_s=3,
        broker_poll_interval_s=0.1, queue_name=f"hg-fault-{uuid.uuid4().hex[:6]}", torch_threads=1,
        data_dir=tmp_path / "data", cache_dir=cache_dir,
    )
    settings.update(overrides)
    return cli_env(**settings)


def submit_jobs(env: dict[str, str], tmp_path: Path, n: int, tag: str = "job") -> int:
    jobs = tmp_path / f"{tag}.jsonl"
    jobs.write_text("\n".join(json.dumps({"kind": "article", "input": {"topic": f"{tag} {i}"}}) for i in range(n)))
    for args in (["db", "upgrade"], ["submit", str(jobs)]):
        result = run_cli(args, env)
        assert result.returncode == 0, result.stderr.decode()
    return int(result.stdout.decode().strip())


def counts(url: str) -> dict[str, int]:
    with session_factory(url)() as s:
        return dict(s.execute(select(Item.status, func.count()).group_by(Item.status)).all())


def n_final(url: str) -> int:
    c = counts(url)
    return sum(c.get(s, 0) for s in FINAL)


def running_ids(url: str) -> list[int]:
    with session_factory(url)() as s:
        return list(s.execute(select(Item.id).where(Item.status == "running").order_by(Item.id)).scalars())


def wait_all_final(url: str, n: int, timeout: float, *logs) -> None:
    wait_for(lambda: n_final(url) == n, timeout, f"all {n} items to finish",
             on_timeout=lambda: f"counts: {counts(url)}\n" + "\n----\n".join(w.log()[-6000:] for w in logs))


def assert_nothing_lost(url: str, n: int) -> dict[int, int]:
    """Every item final with exactly one output, from exactly one attempt of its last run.

    In `ar` mode a finished run writes one attempt; a run that died or lost its claim writes none
    (finish_item is one transaction, guarded by the claim). So: attempts == items, each attempt's
    run_no is its item's run_count, and the item's final attempt is that attempt.
    Returns {item id: run_count}.
    """
    dispose_engines()  # the server may have restarted under this process's pool
    with session_factory(url)() as s:
        items = s.execute(select(Item).order_by(Item.id)).scalars().all()
        attempts = s.execute(select(Attempt)).scalars().all()
    assert len(items) == n
    assert [i.id for i in items if i.status not in FINAL] == [], "items left unfinished"
    assert [i.id for i in items if i.status == "error"] == [], [i.error for i in items if i.error][:2]
    assert all(i.output for i in items)
    by_item: dict[int, list[Attempt]] = {}
    for a in attempts:
        by_item.setdefault(a.item_id, []).append(a)
    assert {i.id: len(by_item.get(i.id, [])) for i in items} == {i.id: 1 for i in items}, "duplicate attempts"
    for item in items:
        (attempt,) = by_item[item.id]
        assert attempt.run_no == item.run_count and item.final_attempt_id == attempt.id
        assert item.claimed_by is None
    return {i.id: i.run_count for i in items}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own (no persistence, like a cache-style production Redis), so
    killing it never disturbs the shared server other tests use."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 20, f"redis-server on port {self.port}", interval=0.1)

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, every queued and unacked message is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        time.sleep(0.2)
