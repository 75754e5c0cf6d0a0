"""run_chunk end to end on a tiny model: claims, attempts, statuses, idempotent redelivery."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from pipeline.orchestrator import run_chunk
from pipeline.runtime import Runtime
from service.spec import parse_jsonl
from service.storage.db import session_factory
from service.storage.models import Attempt, Item
from service.submission import submit_batch

JOBS = "\n".join(json.dumps(o) for o in [
    {"kind": "article", "input": {"topic": "tea"}},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red"}}},
    {"kind": "code", "input": {"prompt": "def f(): ..."}},
    {"kind": "code", "input": {"prompt": "def g(): ..."}, "params": {"temperature": 0.8, "seed": 3}},
])


@pytest.fixture
def runtime(tiny_settings, db_url):
    return Runtime(tiny_settings.replace(database_url=db_url))


def test_chunk_stores_one_attempt_and_a_final_status_per_item(runtime, db_url):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="t", mode="ar").new_item_ids
    outcome = run_chunk(ids, sessions=sessions, runtime=runtime)
    assert sorted(outcome.claimed) == ids and set(outcome.finished) == set(ids) and not outcome.lost
    with sessions() as s:
        for item in s.execute(select(Item).order_by(Item.id)).scalars():
            attempt = s.get(Attempt, item.final_attempt_id)
            assert attempt.path == "ar" and attempt.run_no == 1
            # status follows the validators: done only if every report passed
            assert item.status == ("done" if attempt.passed else "flagged")
            assert all(r["passed"] for r in attempt.reports) == attempt.passed
            assert item.output == attempt.output and item.final_path == "ar"
            # ar mode: one token per forward, except where the plan's grammar jumped forward over forced tokens
            t = attempt.timings
            assert attempt.generated_tokens >= 1 and attempt.forward_passes >= attempt.generated_tokens - t["plan_tokens"]
            assert 0 < t["plan_forwards"] <= t["plan_tokens"] + t["plan_rounds"]
            # a failed attempt of a kind with retry samples (code, product) also names the retries' sampler
            retried = {"retry": "tiny-llama sampled at T=0.8"} if "retry_samples" in attempt.timings else {}
            assert attempt.models == {"planner": "tiny-llama", "ar": "tiny-llama", **retried}
            assert attempt.prompt_tokens > 10
            assert "plan" in attempt.timings and attempt.duration_s >= 0
            assert item.claimed_by is None and item.finished_at is not None
        # the code items have a syntax validator, whose report is stored
        code = s.execute(select(Item).where(Item.kind == "code")).scalars().first()
        names = [r["validator"] for r in s.get(Attempt, code.final_attempt_id).reports if r["validator"] != "retries"]
        assert names[0] == "plan" and (names[1:] == ["python_syntax", "sandbox_tests"] or names[1] == "generation")


def test_redelivered_chunk_adds_nothing(runtime, db_url):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="t", mode="ar").new_item_ids
    run_chunk(ids, sessions=sessions, runtime=runtime)
    with sessions() as s:
        before = [(i.id, i.status, i.output, i.run_count) for i in s.execute(select(Item).order_by(Item.id)).scalars()]
    again = run_chunk(ids, sessions=sessions, runtime=runtime)
    assert again.claimed == [] and sorted(again.skipped) == ids
    with sessions() as s:
        after = [(i.id, i.status, i.output, i.run_count) for i in s.execute(select(Item).order_by(Item.id)).scalars()]
        assert after == before
        assert s.execute(select(func.count()).select_from(Attempt)).scalar_one() == len(ids)


def test_generation_is_deterministic_across_runs(runtime, db_url, tiny_settings, tmp_path):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="t", mode="ar").new_item_ids
    run_chunk(ids, sessions=sessions, runtime=runtime)
    # The same jobs in another database, in a different chunking, give the same outputs.
    from migrations import runner

    other_url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    runner.upgrade(other_url)
    other = session_factory(other_url)
    other_ids = submit_batch(other, parse_jsonl(JOBS), name="t", mode="ar").new_item_ids
    other_runtime = Runtime(tiny_settings.replace(database_url=other_url))
    for i in reversed(other_ids):
        run_chunk([i], sessions=other, runtime=other_runtime)
    with sessions() as a, other() as b:
        first = a.execute(select(Item.output).order_by(Item.line_no)).scalars().all()
        second = b.execute(select(Item.output).order_by(Item.line_no)).scalars().all()
    assert first == second


def test_generation_failure_marks_items_error_not_lost(runtime, db_url, monkeypatch):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="t", mode="ar").new_item_ids

    def boom(*a, **k):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr("pipeline.orchestrator.run_planned", boom)
    outcome = run_chunk(ids, sessions=sessions, runtime=runtime)
    assert set(outcome.finished.values()) == {"error"}
    with sessions() as s:
        items = s.execute(select(Item)).scalars().all()
        assert all(i.status == "error" and "out of memory (simulated)" in i.error for i in items)
