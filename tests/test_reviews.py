"""Review decisions (service.reviews), evidence highlighting, and export of review outcomes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hybridgen.admin.highlight import evidence_spans, highlighted
from hybridgen.admin.item_page import item_page
from service.export import export_records
from service.reviews import ReviewError, review_items, undo_last
from service.storage.search import matches
from service.spec import parse_array
from service.storage.db import session_factory
from service.storage.models import Item, Review, User
from service.submission import submit_batch
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
        from service.accounts import create_user

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


def test_use_attempt_makes_that_output_final_and_undo_restores_it(migrated_sqlite):
    seed = seed_review_data(migrated_sqlite)
    sessions = session_factory(migrated_sqlite)
    with sessions.begin() as s:
        alice = s.execute(select(User)).scalar_one()
        item = s.get(Item, seed.flagged_id)
        hybrid = next(a for a in item.attempts if a.path == "hybrid")
        other = s.get(Item, seed.hybrid_done_id).attempts[0]
        with pytest.raises(ReviewError, match="not one of its attempts"):
            review_items(s, [seed.flagged_id], "use_attempt", alice, attempt_id=other.id)
        with pytest.raises(ReviewError, match="needs the attempt"):
            review_items(s, [seed.flagged_id], "use_attempt", alice)
        review_items(s, [seed.flagged_id], "use_attempt", alice, attempt_id=hybrid.id)
        assert item.edited_output == hybrid.output and item.review_status == "edited"
        assert "Tickets" in item.search_text, "the chosen output is searchable"
        review_items(s, [seed.hybrid_done_id], "approve", alice)
    with sessions() as s:
        records = {r["item_id"]: r for r in export_records(s, seed.batch_id)}
        assert records[seed.flagged_id]["output"] == hybrid.output
    with sessions.begin() as s:
        alice = s.execute(select(User)).scalar_one()
        undo = undo_last(s, alice)  # takes back the approve of hybrid_done first (the latest)
        assert s.get(Item, seed.hybrid_done_id).review_status is None and undo.decision == "undo"
        undo_last(s, alice)
        item = s.get(Item, seed.flagged_id)
        assert item.edited_output is None and item.review_status is None and item.status == "flagged"
        with pytest.raises(ReviewError, match="nothing to undo"):
            undo_last(s, alice)


def test_undo_of_a_requeue_puts_the_item_back_unless_it_ran_again(migrated_sqlite):
    seed = seed_review_data(migrated_sqlite)
    sessions = session_factory(migrated_sqlite)
    with sessions.begin() as s:
        alice = s.execute(select(User)).scalar_one()
        review_items(s, [seed.flagged_id, seed.hybrid_done_id], "requeue", alice)
        undo_last(s, alice)  # the latest review row is hybrid_done's
        assert s.get(Item, seed.hybrid_done_id).status == "done"
        item = s.get(Item, seed.flagged_id)
        assert item.status == "queued"
        item.run_count += 1  # a worker claimed it again
        with pytest.raises(ReviewError, match="run again"):
            undo_last(s, alice)


def test_search_text_covers_input_and_output_of_every_item(migrated_sqlite):
    seed = seed_review_data(migrated_sqlite)
    sessions = session_factory(migrated_sqlite)
    with sessions() as s:
        def found(term):
            return sorted(s.execute(select(Item.id).where(matches(term, "sqlite"))).scalars())
        assert found("museum") == [seed.flagged_id], "input text is searched"
        assert seed.hybrid_done_id in found("Tea"), "case-insensitive"
        assert found("100%_") == [], "LIKE wildcards in the term are literal"
        assert found("museum tea") == [], "every word must match"
