"""A database with finished items as the pipeline stores them (attempts, reports, evidence).

The review app and the API only read what workers wrote, so these tests store it with the same
functions the workers use (claim_items / finish_item) instead of running models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.accounts import create_token, create_user
from service.spec import parse_array
from service.storage.db import session_factory
from service.storage.models import ItemStatus
from service.storage.queries import AttemptRecord, claim_items, finish_item
from service.storage.types import utcnow
from service.submission import submit_batch

ADMIN, ADMIN_PASSWORD = "alice", "correct horse battery"

CONTRADICTING = ("The museum is open every day of the week. Entry is free for children. "
                 "The museum is closed on Mondays.")
GOOD_ARTICLE = "# Tea\n\n## History\n\nTea came from China.\n"


def contradiction_report(text: str) -> dict:
    a, b = "The museum is open every day of the week.", "The museum is closed on Mondays."
    return {
        "validator": "contradiction", "passed": False, "score": 0.0,
        "message": "2 sentences contradict each other",
        "evidence": [{"start": text.find(a), "end": text.find(a) + len(a), "text": a, "note": "contradicts sentence 3"},
                     {"start": text.find(b), "end": text.find(b) + len(b), "text": b, "note": "contradicts sentence 1"}],
        "details": {},
    }


PASSED = [{"validator": "markdown_structure", "passed": True, "score": 1.0, "message": "ok", "evidence": [],
           "details": {}}]


@dataclass
class Seeded:
    url: str
    batch_id: int
    flagged_id: int
    hybrid_done_id: int
    fallback_done_id: int
    token: str


def seed_review_data(url: str) -> Seeded:
    sessions = session_factory(url)
    jobs = [
        {"kind": "article", "input": {"topic": "the city museum"}, "key": "museum"},
        {"kind": "article", "input": {"topic": "tea"}, "key": "tea"},
        {"kind": "article", "input": {"topic": "coffee"}, "key": "coffee"},
    ]
    result = submit_batch(sessions, parse_array(jobs), name="review-demo.jsonl", mode="hybrid")
    flagged, hybrid_done, fallback_done = result.new_item_ids
    plan = {"title": "The City Museum", "sections": [{"heading": "Visiting", "points": ["hours"]}]}
    t0 = utcnow()
    with sessions.begin() as s:
        claims = {c.item_id: c for c in claim_items(s, result.new_item_ids, "seed-worker", t0 - timedelta(hours=1))}
        finish_item(s, claims[flagged], "seed-worker", status=ItemStatus.flagged, final_path="ar_fallback",
                    output=CONTRADICTING, attempts=[
                        AttemptRecord("hybrid", False, CONTRADICTING.replace("Entry", "Tickets"),
                                      [contradiction_report(CONTRADICTING.replace("Entry", "Tickets"))], plan=plan,
                                      generated_tokens=40, forward_passes=30),
                        AttemptRecord("ar_fallback", False, CONTRADICTING, [contradiction_report(CONTRADICTING)],
                                      plan=plan, generated_tokens=40, forward_passes=40),
                    ])
        finish_item(s, claims[hybrid_done], "seed-worker", status=ItemStatus.done, final_path="hybrid",
                    output=GOOD_ARTICLE, attempts=[AttemptRecord("hybrid", True, GOOD_ARTICLE, PASSED,
                                                                 generated_tokens=12, forward_passes=8)])
        finish_item(s, claims[fallback_done], "seed-worker", status=ItemStatus.done, final_path="ar_fallback",
                    output=GOOD_ARTICLE, attempts=[
                        AttemptRecord("hybrid", False, "## Tea\n\n", [{"validator": "degeneration", "passed": False,
                                                                      "message": "too short", "evidence": []}]),
                        AttemptRecord("ar_fallback", True, GOOD_ARTICLE, PASSED),
                    ])
        create_user(s, ADMIN, ADMIN_PASSWORD)
        token = create_token(s, ADMIN, "tests").token
    return Seeded(url, result.batch_id, flagged, hybrid_done, fallback_done, token)
