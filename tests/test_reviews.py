"""Review decisions (pipeline.reviews), evidence highlighting, and export of review outcomes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hybridgen.admin.highlight import evidence_spans, highlighted
from hybridgen.admin.item_page import item_page
from pipeline.export import export_records
from pipeline.reviews import ReviewError, review_items
from pipeline.spec import parse_array
from pipeline.storage.db import session_factory
from pipeline.storage.models import Item, Review, User
from pipeline.submission import submit_batch
from tests.review_fixtures import seed_review_data


def test_highlight_escapes_html_and_marks_evidence():
    text = 'Intro <script>alert(1)</script>. It is red. It is blue.'
    reports = [{"validator": "contradiction", "passed": False, "message": "x",
                "evidence": [{"start": 0, "end": 3, "text": "It is red.", "note": "<b>why</b>"},  # stale offsets
                             {"start": text.index("It is blue."), "end": len(text), "text": "It is blue."}]},
               {"validator": "degeneration", "passed": True, "evidence": [{"start": 0, "end": 5, "text": "Intro"}]}]
    html = str(highlighted(text, reports))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<mark class="evidence" title="&lt;b&gt;why&lt;/b&gt;">It is red.</mark>' in html
    assert html.count("<mark") == 2, "passing reports are not highlighted"
    overlapping = [{"validator": "v", "passed": False, "message": "m",
                    "evidence": [{"start": 0, "end": 7, "text": "aaa bbb"}, {"start": 4, "end": 7, "text": "bbb"}]}]
    assert [(a, b) for a, b, _ in evidence_spans("aaa bbb", overlapping)] == [(0, 7)], "overlaps merge into one mark"


def test_review_decisions_are_stored_and_exported(migrated_sqlite):
    seed = seed_review_data(migrated_sqlite)
    sessions = session_factory(migrated_sqlite)
    with sessions.begin() as s:
        alice = s.execute(select(User)).scalar_one()
        out = review_items(s, [seed.flagged_id, seed.hybrid_done_id, 999], "approve", alice, note="fine")
        assert out.applied == [seed.flagged_id, seed.hybrid_done_id] and "no such item" in out.skipped[999]
        review_items(s, [seed.fallback_done_id], "edit", alice, edited_output="# Tea\n\nBetter.")
        with pytest.raises(ReviewError, match="empty"):
            review_items(s, [seed.fallback_done_id], "edit", alice, edited_output="  ")
        with pytest.raises(ReviewError, match="exactly one"):
            review_items(s, [1, 2], "edit", alice, edited_output="x")
        review_items(s, [seed.hybrid_done_id], "reject", alice)
    with sessions() as s:
        records = {r["item_id"]: r for r in export_records(s, seed.batch_id)}
        assert seed.hybrid_done_id not in records, "rejected items are left out by default"
        assert records[seed.fallback_done_id]["output"] == "# Tea\n\nBetter." and records[seed.fallback_done_id]["edited"]
        assert records[seed.flagged_id]["review"]["decision"] == "approve"
        assert records[seed.flagged_id]["review"]["reviewer"] == "alice"
        assert len(list(export_records(s, seed.batch_id, include_rejected=True))) == 3
        assert [r.decision for r in s.execute(select(Review).order_by(Review.id)).scalars()] == \
            ["approve", "approve", "edit", "reject"]


def test_edits_must_stay_valid_for_their_kind_and_running_items_wait(migrated_sqlite):
    sessions = session_factory(migrated_sqlite)
    jobs = [{"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red"}}},
            {"kind": "code", "input": {"prompt": "def f(): ..."}}]
    ids = submit_batch(sessions, parse_array(jobs), name="t", mode="ar").new_item_ids
    with sessions.begin() as s:
        from pipeline.accounts import create_user

        user = create_user(s, "rev", "password1")
        out = review_items(s, ids, "approve", user)
        assert out.applied == [] and all("queued" in why for why in out.skipped.values())
        for item_id in ids:
            s.get(Item, item_id).status = "done"
        with pytest.raises(ReviewError, match="not JSON"):
            review_items(s, [ids[0]], "edit", user, edited_output="{broken")
        with pytest.raises(ReviewError, match="JSON object"):
            review_items(s, [ids[0]], "edit", user, edited_output="[1, 2]")
        with pytest.raises(ReviewError, match="does not parse"):
            review_items(s, [ids[1]], "edit", user, edited_output="def f(:\n")
        assert review_items(s, [ids[1]], "edit", user, edited_output="def f():\n    return 1\n").applied == [ids[1]]
        requeued = review_items(s, [ids[1]], "requeue", user)
        assert requeued.requeued == [ids[1]]
        item = s.get(Item, ids[1])
        assert item.status == "queued" and item.edited_output is None and item.review_status == "requeued"


def test_item_page_gathers_attempts_evidence_and_plan(migrated_sqlite):
    seed = seed_review_data(migrated_sqlite)
    with session_factory(migrated_sqlite)() as s:
        page = item_page(s, seed.flagged_id)
        assert [a.attempt.path for a in page.attempts] == ["hybrid", "ar_fallback"]
        assert [a.is_final for a in page.attempts] == [False, True]
        assert page.evidence[0]["validator"] == "contradiction"
        assert str(page.final_output_html).count("<mark") == 2
        assert '"title": "The City Museum"' in page.plan_json
        assert item_page(s, 424242) is None
