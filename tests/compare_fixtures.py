"""Finished product and code items with two attempts each, for the comparison, the field edit and feedback.

Stored with the workers' own functions (claim_items / finish_item), as in tests/review_fixtures.py:
- a product whose hybrid record failed (its description repeats a sentence) and whose fallback passed
  and is final; its hybrid title holds HTML, which must come out escaped;
- a code item whose hybrid version parses and whose fallback does not, yet the fallback is final
  (the case in issue 25): the reviewer should use the hybrid version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from service.spec import parse_array
from service.storage.db import session_factory
from service.storage.models import ItemStatus
from service.storage.queries import AttemptRecord, claim_items, finish_item
from service.storage.types import utcnow
from service.submission import submit_batch

ATTRIBUTES = {"capacity": "350 ml", "material": "stainless steel", "dishwasher safe": False}
REPEATED = "The Aurora Travel Mug keeps drinks hot."
HYBRID_RECORD = {
    "title": "<b>Aurora</b> Travel Mug",
    "tagline": "Hot drinks for your commute",
    "facts": ["Capacity: 350 ml", "Material: stainless steel", "Not dishwasher safe"],
    "description": f"{REPEATED} {REPEATED} Wash it by hand.",
    "attributes": ATTRIBUTES,
}
FALLBACK_RECORD = {
    "title": "Aurora Travel Mug",
    "tagline": "Coffee that stays hot on the way",
    "facts": ["Capacity: 350 ml", "Material: stainless steel", "Not dishwasher safe"],
    "description": "A stainless steel mug of 350 ml that keeps coffee hot for the whole commute. Wash it by hand.",
    "attributes": ATTRIBUTES,
}
HYBRID_CODE = "def add(a, b):\n    \"\"\"The sum of a and b.\"\"\"\n    return a + b\n"
FALLBACK_CODE = "def add(a, b)\n    return a + b\n"
CODE_TESTS = ["assert add(1, 2) == 3"]


def _report(validator: str, passed: bool, message: str = "ok", evidence: list | None = None,
            field: str | None = None) -> dict:
    return {"validator": validator, "passed": passed, "score": 1.0 if passed else 0.0, "message": message,
            "evidence": evidence or [], "details": {"field": field} if field else {}}


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, indent=2)


@dataclass
class CompareSeed:
    batch_id: int
    product_id: int
    code_id: int


def seed_compare_data(url: str) -> CompareSeed:
    """Call after tests.review_fixtures.seed_review_data (which makes the reviewer's account)."""
    sessions = session_factory(url)
    jobs = [
        {"kind": "product", "key": "aurora-mug", "input": {"name": "Aurora Travel Mug", "attributes": ATTRIBUTES}},
        {"kind": "code", "key": "add", "input": {"prompt": "Write add(a, b), the sum of two numbers.",
                                                 "tests": CODE_TESTS}},
    ]
    result = submit_batch(sessions, parse_array(jobs), name="compare-demo.jsonl", mode="hybrid")
    product_id, code_id = result.new_item_ids
    hybrid_product, fallback_product = dumps(HYBRID_RECORD), dumps(FALLBACK_RECORD)
    # Offsets into the description, as validators.json_field reports them.
    second = HYBRID_RECORD["description"].index(REPEATED, 1)
    t0 = utcnow()
    with sessions.begin() as s:
        claims = {c.item_id: c for c in claim_items(s, result.new_item_ids, "seed-worker", t0 - timedelta(hours=1))}
        finish_item(s, claims[product_id], "seed-worker", status=ItemStatus.done, final_path="ar_fallback",
                    output=fallback_product, attempts=[
                        AttemptRecord("hybrid", False, hybrid_product, [
                            _report("json_schema", True),
                            _report("degeneration[description]", False, "sentence repeated 2 times",
                                    [{"start": second, "end": second + len(REPEATED), "text": REPEATED,
                                      "note": "repeats sentence 1"}], field="description"),
                        ], generated_tokens=90, forward_passes=40),
                        AttemptRecord("ar_fallback", True, fallback_product,
                                      [_report("json_schema", True), _report("degeneration[description]", True)],
                                      generated_tokens=95, forward_passes=95),
                    ])
        finish_item(s, claims[code_id], "seed-worker", status=ItemStatus.flagged, final_path="ar_fallback",
                    output=FALLBACK_CODE, attempts=[
                        AttemptRecord("hybrid", False, HYBRID_CODE, [
                            _report("python_syntax", True),
                            _report("sandbox_tests", False, "the tests timed out after 10 s"),
                        ], generated_tokens=30, forward_passes=12),
                        AttemptRecord("ar_fallback", False, FALLBACK_CODE, [
                            _report("python_syntax", False, "invalid syntax: expected ':' at line 1",
                                    [{"start": 0, "end": 13, "text": "def add(a, b)", "note": "line 1"}]),
                        ], generated_tokens=20, forward_passes=20),
                    ])
    return CompareSeed(result.batch_id, product_id, code_id)
