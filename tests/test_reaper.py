"""The reaper on real databases and brokers, without workers: what it requeues, what it re-sends, and when not.

A dead worker is simulated by rows (a claim whose heartbeat is an hour old); the worker-process
versions of the same faults are in tests/test_faults_*.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from pipeline.settings import Settings
from service.spec import parse_jsonl
from service.storage.db import dispose_engines, session_factory
from service.storage.models import Item
from service.storage.queries import claim_items
from service.storage.types import utcnow
from service.submission import submit_batch
from workers.app import create_app
from workers.enqueue import queued_task_count, send_tasks
from workers.reaper import reap_once

JOBS = "\n".join(json.dumps({"kind": "article", "input": {"topic": f"topic {i}"}}) for i in range(4))
HOUR_AGO = timedelta(hours=1)


@pytest.fixture
def setup(db_url, request, tmp_path):
    """Settings on the test database and a broker of the same shape: SQLite + SQLite, PG + Redis."""
    broker = request.getfixturevalue("redis_url") if db_url.startswith("postgresql") else ""
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, broker_url=broker, chunk_size=3,
                        stale_after_s=60, reenqueue_after_s=30, visibility_timeout_s=7200,
                        queue_name=f"reaper-{tmp_path.name[-12:]}")
    (tmp_path / "data").mkdir()
    yield settings, create_app(settings), session_factory(db_url)
    dispose_engines()


def set_items(sessions, ids, **values):
    with sessions.begin() as s:
        s.execute(update(Item).where(Item.id.in_(ids)).values(**values))


def test_stale_and_lost_items_are_requeued_and_resent_once(setup):
    settings, app, sessions = setup
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="a", mode="ar").new_item_ids
    with sessions.begin() as s:  # ids[0]: claimed by a worker that died an hour ago
        claim_items(s, ids[:1], "dead-worker", stale_before=utcnow())
    set_items(sessions, ids[:1], heartbeat_at=utcnow() - HOUR_AGO)
    set_items(sessions, ids[1:2], enqueued_at=utcnow() - HOUR_AGO)  # its task was lost, long ago
    set_items(sessions, ids[2:3], enqueued_at=utcnow())  # its task was just sent: carried
    set_items(sessions, ids[3:], updated_at=utcnow() - HOUR_AGO)  # stored, never sent (submitter died)

    report = reap_once(settings, app)
    assert report.stale_requeued == ids[:1]
    assert report.resent == [ids[0], ids[1], ids[3]] and report.tasks_sent == 1
    assert report.broker_queue == 0 and queued_task_count(app, settings.queue_name) == 1
    with sessions() as s:
        items = {i.id: i for i in s.execute(select(Item)).scalars()}
    assert items[ids[0]].status == "queued" and items[ids[0]].claimed_by is None
    assert all(items[i].enqueued_at is not None for i in ids)

    again = reap_once(settings, app)  # a second pass (or a second worker's reaper) finds nothing
    assert again.stale_requeued == [] and again.resent == [] and again.tasks_sent == 0


def test_fresh_claims_and_submissions_in_progress_are_left_alone(setup):
    settings, app, sessions = setup
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="a", mode="ar").new_item_ids
    with sessions.begin() as s:
        claim_items(s, ids[:2], "live-worker", stale_before=utcnow())
    report = reap_once(settings, app)  # ids[2:] were stored a moment ago and are not sent yet
    assert report.stale_requeued == [] and report.resent == []


def test_lost_tasks_wait_for_the_visibility_timeout_while_the_queue_is_busy(setup):
    settings, app, sessions = setup
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="a", mode="ar").new_item_ids
    send_tasks(app, settings, [10**9])  # the queue holds work: tasks behind it may still carry ids
    set_items(sessions, ids, enqueued_at=utcnow() - HOUR_AGO)
    report = reap_once(settings, app)
    assert report.broker_queue == 1 and report.resent == []

    quick = settings.replace(visibility_timeout_s=600)  # an hour is past this: presumed lost
    assert reap_once(quick, app).resent == ids


def test_reap_command(tmp_path, monkeypatch, model_cache_dir):
    (tmp_path / "data").mkdir()  # a data folder must exist: hybridgen refuses a mistyped one
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HYBRIDGEN_STALE_AFTER_S", "60")
    runner = CliRunner()
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(JOBS)
    assert runner.invoke(runner_cli(), ["submit", str(jobs)]).exit_code == 0
    url = f"sqlite:///{tmp_path / 'data' / 'hybridgen.sqlite'}"
    sessions = session_factory(url)
    with sessions() as s:
        ids = list(s.execute(select(Item.id).order_by(Item.id)).scalars())
    with sessions.begin() as s:
        claim_items(s, ids[:2], "dead-worker", stale_before=utcnow())
    set_items(sessions, ids[:2], heartbeat_at=utcnow() - HOUR_AGO)

    result = runner.invoke(runner_cli(), ["reap", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["stale_requeued"] == ids[:2] and report["resent"] == ids[:2] and report["tasks_sent"] == 1
    plain = runner.invoke(runner_cli(), ["reap"])
    assert plain.exit_code == 0 and "requeued 0 stale items, re-sent 0 items in 0 tasks" in plain.output
    help_text = runner.invoke(runner_cli(), ["reap", "--help"]).output
    assert "--loop" in help_text and "--interval" in help_text
    dispose_engines()


def runner_cli():
    from hybridgen.cli import cli

    return cli


def test_submit_with_the_broker_down_stores_the_batch_and_the_reaper_queues_it(tmp_path, monkeypatch):
    from tests.fault_helpers import free_port

    (tmp_path / "data").mkdir()  # a data folder must exist: hybridgen refuses a mistyped one
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HYBRIDGEN_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(JOBS)
    down = CliRunner().invoke(runner_cli(), ["submit", str(jobs)])
    assert down.exit_code == 1 and "Traceback" not in down.output
    assert "batch 1 is stored (4 items), but the broker refused its tasks" in down.output
    assert "Nothing is lost" in down.output
    url = f"sqlite:///{tmp_path / 'data' / 'hybridgen.sqlite'}"
    with session_factory(url)() as s:
        assert [i.enqueued_at for i in s.execute(select(Item)).scalars()] == [None] * 4

    # The broker is back (here: the embedded one); past the grace period the reaper sends them.
    monkeypatch.delenv("HYBRIDGEN_BROKER_URL")
    monkeypatch.setenv("HYBRIDGEN_REENQUEUE_AFTER_S", "0")
    result = CliRunner().invoke(runner_cli(), ["reap", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["resent"]) == 4 and report["tasks_sent"] == 1
    dispose_engines()


def test_reaper_prunes_what_the_embedded_broker_delivered(tmp_path, migrated_sqlite):
    import sqlite3

    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_sqlite, chunk_size=1, queue_name="q")
    app = create_app(settings)
    send_tasks(app, settings, [1, 2, 3])
    with app.connection_for_read() as conn:  # a worker takes two of the three
        for _ in range(2):
            assert conn.default_channel.basic_get("q", no_ack=True) is not None
    broker = sqlite3.connect(tmp_path / "data" / "broker.sqlite")
    assert broker.execute("SELECT count(*) FROM kombu_message").fetchone() == (3,)  # kombu keeps them all

    report = reap_once(settings, app)
    assert report.pruned_messages == 2 and queued_task_count(app, "q") == 1
    assert broker.execute("SELECT count(*), sum(visible) FROM kombu_message").fetchone() == (1, 1)
    broker.close()
    dispose_engines()
