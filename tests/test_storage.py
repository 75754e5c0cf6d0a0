"""Submission and item state transitions on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.spec import parse_jsonl
from service.storage.db import session_factory
from service.storage.models import Attempt, Batch, Item, ItemStatus
from service.storage.queries import (
    AttemptRecord,
    batch_summary,
    claim_items,
    finish_item,
    reap_stale,
    requeue_items,
)
from service.storage.types import utcnow
from service.submission import submit_batch

JOBS = "\n".join(json.dumps(o) for o in [
    {"kind": "article", "input": {"topic": "tea"}, "key": "a"},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red"}}},
    {"kind": "code", "input": {"prompt": "def f(): ..."}, "key": "c"},
])


def count(sessions, model) -> int:
    with sessions() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_submit_stores_batch_and_items_in_order(db_url):
    sessions = session_factory(db_url)
    result = submit_batch(sessions, parse_jsonl(JOBS), name="jobs.jsonl", mode="ar")
    assert len(result.new_item_ids) == 3 and not result.duplicate_batch
    with sessions() as s:
        items = s.execute(select(Item).order_by(Item.id)).scalars().all()
        assert [(i.line_no, i.kind, i.status, i.client_key) for i in items] == [
            (1, "article", "queued", "a"), (2, "product", "queued", None), (3, "code", "queued", "c")]
        assert s.get(Batch, result.batch_id).item_count == 3


def test_same_content_twice_returns_the_stored_batch(db_url):
    sessions = session_factory(db_url)
    first = submit_batch(sessions, parse_jsonl(JOBS), name="a.jsonl", mode="ar")
    again = submit_batch(sessions, parse_jsonl(JOBS + "\n"), name="b.jsonl", mode="ar")
    assert again.batch_id == first.batch_id and again.duplicate_batch and again.new_item_ids == []
    assert count(sessions, Item) == 3 and count(sessions, Batch) == 1


def test_stored_keys_are_not_stored_again(db_url):
    sessions = session_factory(db_url)
    first = submit_batch(sessions, parse_jsonl(JOBS), name="a.jsonl", mode="ar")
    more = "\n".join(json.dumps(o) for o in [
        {"kind": "article", "input": {"topic": "a different topic"}, "key": "a"},
        {"kind": "article", "input": {"topic": "new"}, "key": "new"},
    ])
    second = submit_batch(sessions, parse_jsonl(more), name="b.jsonl", mode="ar")
    assert second.batch_id != first.batch_id and len(second.new_item_ids) == 1
    assert [(e.line_no, e.key, e.batch_id) for e in second.existing] == [(1, "a", first.batch_id)]
    assert count(sessions, Item) == 4


def test_all_keys_stored_answers_with_existing_batch(db_url):
    sessions = session_factory(db_url)
    first = submit_batch(sessions, parse_jsonl(JOBS), name="a.jsonl", mode="ar")
    only_keys = json.dumps({"kind": "code", "input": {"prompt": "other"}, "key": "c"})
    again = submit_batch(sessions, parse_jsonl(only_keys), name="c.jsonl", mode="ar")
    assert again.batch_id == first.batch_id and again.duplicate_batch and count(sessions, Batch) == 1


def test_claim_is_exclusive_and_finish_needs_the_claim(db_url):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="a", mode="ar").new_item_ids
    long_ago = utcnow() - timedelta(hours=1)
    with sessions.begin() as s:
        claims = claim_items(s, ids, "worker-1", stale_before=long_ago)
    assert [c.run_no for c in claims] == [1, 1, 1]
    with sessions.begin() as s:  # a second worker (duplicate delivery) gets nothing
        assert claim_items(s, ids, "worker-2", stale_before=long_ago) == []

    record = AttemptRecord(path="ar", passed=True, output="x", generated_tokens=4, forward_passes=5)
    with sessions() as s:
        assert not finish_item(s, claims[0], "worker-2", status=ItemStatus.done, attempts=[record], output="x",
                               final_path="ar")
        s.rollback()
    with sessions() as s:
        assert finish_item(s, claims[0], "worker-1", status=ItemStatus.done, attempts=[record], output="x",
                           final_path="ar")
        s.commit()
    with sessions() as s:
        item = s.get(Item, ids[0])
        assert item.status == "done" and item.output == "x" and item.claimed_by is None
        attempt = s.get(Attempt, item.final_attempt_id)
        assert attempt.path == "ar" and attempt.run_no == 1 and attempt.tokens_per_forward == 0.8
    assert count(sessions, Attempt) == 1


def test_stale_claim_can_be_taken_over_and_late_writer_loses(db_url):
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl(JOBS), name="a", mode="ar").new_item_ids
    with sessions.begin() as s:
        old = claim_items(s, ids[:1], "dead-worker", stale_before=utcnow() - timedelta(hours=1))[0]
    # Its heartbeat is now older than "now + 1s": stale for a reaper looking from the future.
    with sessions.begin() as s:
        assert reap_stale(s, stale_before=utcnow() + timedelta(seconds=1)) == ids[:1]
    with sessions.begin() as s:
        new = claim_items(s, ids[:1], "worker-2", stale_before=utcnow() - timedelta(hours=1))[0]
    assert new.run_no == old.run_no + 1
    rec = AttemptRecord(path="ar", passed=False, output="late")
    with sessions() as s:
        assert not finish_item(s, old, "dead-worker", status=ItemStatus.flagged, attempts=[rec])
        s.rollback()
    assert count(sessions, Attempt) == 0


def test_requeue_and_summary(db_url):
    sessions = session_factory(db_url)
    batch = submit_batch(sessions, parse_jsonl(JOBS), name="a", mode="ar")
    ids = batch.new_item_ids
    with sessions.begin() as s:
        claims = claim_items(s, ids, "w", stale_before=utcnow() - timedelta(hours=1))
    with sessions.begin() as s:
        for claim, status in zip(claims, [ItemStatus.done, ItemStatus.flagged, ItemStatus.error]):
            rec = AttemptRecord(path="ar", passed=status == ItemStatus.done, output="o", generated_tokens=10,
                                forward_passes=10)
            assert finish_item(s, claim, "w", status=status, attempts=[rec], output="o", final_path="ar")
    with sessions() as s:
        summary = batch_summary(s, batch.batch_id)
    assert summary["counts"] == {"queued": 0, "running": 0, "done": 1, "flagged": 1, "error": 1}
    assert summary["progress"] == 1.0 and summary["paths"]["ar"]["attempts"] == 3
    assert summary["paths"]["ar"]["passed"] == 1
    with sessions.begin() as s:
        assert sorted(requeue_items(s, ids[1:], only_final=True)) == ids[1:]
    with sessions() as s:
        assert batch_summary(s, batch.batch_id)["counts"]["queued"] == 2
        assert batch_summary(s, 999) is None
