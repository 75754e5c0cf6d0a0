"""Duplicates: the same batch file submitted twice, and the same task delivered several times at once.

Concurrent deliveries run `run_chunk` in threads on two Runtimes (two worker identities) and twice
on one Runtime (the threads pool: one identity, two runs). The claim decides: each item is
generated once, with one attempt. A retried task in the same process takes its own abandoned claim
back at once instead of waiting for the reaper.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hybridgen.cli import cli
from pipeline.orchestrator import run_chunk
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from service.spec import parse_jsonl
from service.storage.db import dispose_engines, session_factory
from service.storage.models import Attempt, Batch, Item
from service.storage.queries import claim_items
from service.storage.types import utcnow
from service.submission import submit_batch
from workers.app import create_app
from workers.enqueue import queued_task_count

@pytest.fixture(autouse=True)
def one_torch_thread():
    """Three generating threads in one process: with torch's default of all cores each, they spin
    against each other (and any other busy process) and run many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


JOBS = [{"kind": "product", "input": {"name": f"Mug {i}", "attributes": {"colour": "red"}}, "key": f"dup-{i}"}
        for i in range(4)]


def table_counts(url: str) -> tuple[int, int, int]:
    with session_factory(url)() as s:
        return tuple(s.execute(select(func.count()).select_from(m)).scalar_one() for m in (Batch, Item, Attempt))


def test_same_file_submitted_twice_stores_and_queues_once(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()  # a data folder must exist: hybridgen refuses a mistyped one
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(tmp_path / "data"))
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in JOBS))
    runner = CliRunner()
    first = runner.invoke(cli, ["submit", str(jobs), "--json"])
    assert first.exit_code == 0, first.output
    url = f"sqlite:///{tmp_path / 'data' / 'hybridgen.sqlite'}"
    app = create_app(Settings.from_env())
    before, queued = table_counts(url), queued_task_count(app, "hybridgen")

    # Reformatted but identical jobs: recognised by content, nothing stored, nothing queued.
    jobs.write_text("\n\n".join(json.dumps(j, indent=None, separators=(", ", ": ")) for j in JOBS) + "\n")
    again = runner.invoke(cli, ["submit", str(jobs), "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)[0]
    assert report["duplicate_batch"] and report["new_items"] == 0 and report["tasks"] == 0
    assert report["batch_id"] == json.loads(first.stdout)[0]["batch_id"]
    assert table_counts(url) == before == (1, 4, 0)
    assert queued_task_count(app, "hybridgen") == queued == 1
    dispose_engines()


def _concurrently(*calls):
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, fn):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return results


def test_same_chunk_delivered_three_times_at_once(tiny_settings, db_url):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl("\n".join(json.dumps(j) for j in JOBS)), name="d", mode="ar").new_item_ids
    settings = tiny_settings.replace(database_url=db_url)
    one, other = Runtime(settings), Runtime(settings)
    one.planner, other.planner  # load before the race, so the race is about claims

    outcomes = _concurrently(*(lambda rt=rt: run_chunk(ids, sessions=sessions, runtime=rt) for rt in (one, one, other)))
    claimed = sorted(i for o in outcomes for i in o.claimed)
    assert claimed == sorted(ids), [o.claimed for o in outcomes]  # each item claimed exactly once
    assert all(not o.lost for o in outcomes)
    with sessions() as s:
        items = s.execute(select(Item)).scalars().all()
        assert all(i.run_count == 1 and i.status in ("done", "flagged") for i in items)
        assert s.execute(select(func.count()).select_from(Attempt)).scalar_one() == len(ids)

    late = run_chunk(ids, sessions=sessions, runtime=other)  # and once more, after the fact
    assert late.claimed == [] and sorted(late.skipped) == sorted(ids)


def test_retry_in_the_same_process_takes_its_own_claim_back(tiny_settings, db_url):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl("\n".join(json.dumps(j) for j in JOBS[:2])), name="r",
                       mode="ar").new_item_ids
    settings = tiny_settings.replace(database_url=db_url)
    mine, theirs = Runtime(settings), Runtime(settings)
    # A first run of `mine` claimed the items, then died on a database error (nothing stored).
    with sessions.begin() as s:
        claim_items(s, ids, mine.worker_id, stale_before=utcnow() - timedelta(hours=1))

    assert run_chunk(ids, sessions=sessions, runtime=theirs).claimed == []  # a live claim of another worker
    retry = run_chunk(ids, sessions=sessions, runtime=mine)
    assert sorted(retry.claimed) == sorted(ids) and set(retry.finished) == set(ids)
    with sessions() as s:
        assert {i.run_count for i in s.execute(select(Item)).scalars()} == {2}
        assert s.execute(select(func.count()).select_from(Attempt)).scalar_one() == len(ids)
