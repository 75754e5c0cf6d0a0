"""A review queue's worth of finished items, stored the way workers store them (claim_items /
finish_item): flagged products whose description degenerated (`degeneration[description]`),
flagged articles with a contradiction, one of them about the aurora borealis, and passing items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from service.accounts import create_user
from service.spec import parse_array
from service.storage.db import session_factory
from service.storage.models import ItemStatus
from service.storage.queries import AttemptRecord, claim_items, finish_item
from service.storage.types import utcnow
from service.submission import submit_batch
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD

AURORA_OUTPUT = ("# Northern Lights\n\n## What they are\n\nThe Aurora appears when charged particles from the sun "
                 "meet the upper atmosphere. The sky is dark all night. The sky is bright all night.\n")


def product_output(n: int) -> str:
    return json.dumps({"title": f"Trailhead Bottle {n}", "tagline": "Keeps water cold",
                       "facts": ["Volume: 750 ml", "Material: steel"],
                       "description": "A steel bottle. " + "A steel bottle. " * 12}, indent=2)


def degenerate_report() -> dict:
    return {"validator": "degeneration[description]", "passed": False, "score": 0.1,
            "message": "the sentence 'A steel bottle.' repeats 13 times", "evidence": [], "details": {}}


def contradiction_report() -> dict:
    return {"validator": "contradiction", "passed": False, "score": 0.0,
            "message": "2 sentences contradict each other", "evidence": [], "details": {}}


PASSED = [{"validator": "json_schema", "passed": True, "score": 1.0, "message": "ok", "evidence": [], "details": {}}]


@dataclass
class Queue:
    url: str
    batch_id: int
    products: list[int]
    """Flagged products, degeneration[description], oldest first."""
    articles: list[int]
    """Flagged articles (contradiction); the first is the aurora one."""
    passing: list[int]
    """Done items (not in the queue)."""

    @property
    def flagged(self) -> list[int]:
        return sorted(self.products + self.articles)


def seed_queue(url: str, *, products: int = 10, articles: int = 2, passing: int = 2, with_user: bool = True) -> Queue:
    sessions = session_factory(url)
    jobs = ([{"kind": "product", "input": {"name": f"Trailhead Bottle {i}", "attributes": {"volume": "750 ml"}},
              "key": f"bottle-{i}"} for i in range(products)]
            + [{"kind": "article", "input": {"topic": "the northern lights" if i == 0 else f"tea number {i}"},
                "key": f"article-{i}"} for i in range(articles)]
            + [{"kind": "product", "input": {"name": f"Good Mug {i}", "attributes": {"volume": "300 ml"}},
                "key": f"mug-{i}"} for i in range(passing)])
    result = submit_batch(sessions, parse_array(jobs), name="queue-demo.jsonl", mode="hybrid", new_batch=True)
    ids = result.new_item_ids
    product_ids, article_ids, passing_ids = ids[:products], ids[products:products + articles], ids[products + articles:]
    with sessions.begin() as s:
        claims = {c.item_id: c for c in claim_items(s, ids, "seed-worker", utcnow() - timedelta(hours=1))}
        for n, item_id in enumerate(product_ids):
            out = product_output(n)
            finish_item(s, claims[item_id], "seed-worker", status=ItemStatus.flagged, final_path="ar_fallback",
                        output=out, attempts=[AttemptRecord("hybrid", False, out, [degenerate_report()]),
                                              AttemptRecord("ar_fallback", False, out, [degenerate_report()])])
        for n, item_id in enumerate(article_ids):
            out = AURORA_OUTPUT if n == 0 else f"# Tea {n}\n\n## History\n\nTea is green. Tea is not green.\n"
            finish_item(s, claims[item_id], "seed-worker", status=ItemStatus.flagged, final_path="hybrid",
                        output=out, attempts=[AttemptRecord("hybrid", False, out, [contradiction_report()])])
        for n, item_id in enumerate(passing_ids):
            out = json.dumps({"title": f"Good Mug {n}", "tagline": "A mug", "facts": [], "description": "A mug."})
            finish_item(s, claims[item_id], "seed-worker", status=ItemStatus.done, final_path="hybrid",
                        output=out, attempts=[AttemptRecord("hybrid", True, out, PASSED)])
        if with_user:
            create_user(s, ADMIN, ADMIN_PASSWORD)
    return Queue(url, result.batch_id, product_ids, article_ids, passing_ids)
