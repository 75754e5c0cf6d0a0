"""The HTTP API against the real app (uvicorn) on PostgreSQL, queueing on Redis, driven by httpx."""

from __future__ import annotations

import json

import httpx
import pytest
import redis
from sqlalchemy import func, select

from hybridgen.app import create_app
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Batch, Item, Review
from tests.live_server import LiveServer
from tests.review_fixtures import seed_review_data

pytestmark = pytest.mark.integration

JOB = {"kind": "article", "input": {"topic": "tea"}}


@pytest.fixture
def api(migrated_pg, redis_url, tmp_path):
    seed = seed_review_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg, broker_url=redis_url,
                        queue_name="api-test", max_request_mb=1)
    with LiveServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {seed.token}"}, timeout=30) as client:
            client.seed = seed
            client.queue = redis.Redis.from_url(redis_url)
            yield client


def table_counts(url: str) -> tuple[int, int]:
    with session_factory(url)() as s:
        return (s.execute(select(func.count()).select_from(Batch)).scalar_one(),
                s.execute(select(func.count()).select_from(Item)).scalar_one())


def test_submit_jsonl_and_array_then_follow_progress(api):
    jsonl = "\n".join(json.dumps({**JOB, "key": f"k{i}", "input": {"topic": f"topic {i}"}}) for i in range(3))
    r = api.post("/api/batches?mode=ar&name=crm-export", content=jsonl,
                 headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["new_items"] == 3 and body["queued"] is True and not body["duplicate_batch"]
    assert api.queue.llen("api-test") >= 1, "the new items must be on the broker's queue"

    again = api.post("/api/batches?mode=ar&name=crm-export", content=jsonl)
    assert again.status_code == 200 and again.json()["batch_id"] == body["batch_id"]
    assert again.json()["duplicate_batch"] is True

    arr = api.post("/api/batches", json=[{**JOB, "input": {"topic": "coffee"}}])
    assert arr.status_code == 201 and arr.json()["new_items"] == 1

    summary = api.get(body["links"]["batch"]).json()
    assert summary["name"] == "crm-export" and summary["mode"] == "ar"
    assert summary["total"] == 3 and summary["counts"]["queued"] == 3 and summary["progress"] == 0.0
    assert api.get("/api/batches").json()["batches"][0]["batch_id"] == arr.json()["batch_id"]


@pytest.mark.parametrize("body, expected", [
    (b'{"kind": "article", "input": {"topic": "ok"}}\n{"kind": "poem", "input": {}}',
     {"line": 2, "field": "kind"}),
    (b'{"kind": "article", "input": {"topic": "ok"}}\n{not json}', {"line": 2, "field": ""}),
    (b'[{"kind": "product", "input": {"name": "Mug"}}]', {"line": 1, "field": "input.attributes"}),
    (b'[{"kind": "article", "input": {"topic": "x"}}', {"line": 0, "field": ""}),
    (b"\xff\xfe{}", {"line": 1, "field": ""}),
    (b"", {"line": 0, "field": ""}),
    (b"[" * 200 + b"]" * 200, {"line": 1, "field": ""}),
    (b'{"kind": "code", "input": {"prompt": 5}}', {"line": 1, "field": "input.prompt"}),
])
def test_bad_bodies_store_nothing_and_say_where(api, body, expected):
    before = table_counts(api.seed.url)
    r = api.post("/api/batches", content=body)
    assert r.status_code == 400, r.text
    problems = r.json()["problems"]
    assert any(p["line"] == expected["line"] and p["field"] == expected["field"] for p in problems), problems
    assert all(p["message"] for p in problems)
    assert table_counts(api.seed.url) == before


def test_oversized_body_and_bad_mode(api):
    before = table_counts(api.seed.url)
    big = (json.dumps({**JOB, "input": {"topic": "x" * 200}}) + "\n") * 6000  # > 1 MiB
    r = api.post("/api/batches", content=big)
    assert r.status_code == 413, r.text
    assert "bytes" in r.json()["detail"]
    r = api.post("/api/batches?mode=fast", content=json.dumps(JOB))
    assert r.status_code == 400 and "mode" in r.json()["detail"]
    assert table_counts(api.seed.url) == before


def test_auth_failures(api):
    url = f"/api/batches/{api.seed.batch_id}"
    assert httpx.get(api.base_url.join(url)).status_code == 401
    assert httpx.get(api.base_url.join(url)).headers["www-authenticate"] == "Bearer"
    for header in ("Bearer hg_not-a-real-token", "Basic YWxpY2U6cHc=", "Bearer", "hg_x"):
        r = httpx.get(api.base_url.join(url), headers={"Authorization": header})
        assert r.status_code in (401, 403), (header, r.status_code)
    before = table_counts(api.seed.url)
    r = httpx.post(api.base_url.join("/api/batches"), content=json.dumps(JOB))
    assert r.status_code == 401 and table_counts(api.seed.url) == before


def test_item_export_and_requeue(api):
    seed = api.seed
    item = api.get(f"/api/items/{seed.flagged_id}").json()
    assert item["status"] == "flagged" and item["final_path"] == "ar_fallback"
    assert [a["path"] for a in item["attempts"]] == ["hybrid", "ar_fallback"]
    assert item["reports"][0]["validator"] == "contradiction"
    assert api.get("/api/items/999999").status_code == 404

    # A rejected item leaves the export unless asked for; a requeue is stored as a review.
    with session_factory(seed.url).begin() as s:
        s.get(Item, seed.hybrid_done_id).review_status = "rejected"
    lines = api.get(f"/api/batches/{seed.batch_id}/export").text.splitlines()
    ids = [json.loads(line)["item_id"] for line in lines]
    # (unreviewed flagged items are left out by default too: tests/test_export_decisions.py)
    assert seed.hybrid_done_id not in ids and seed.fallback_done_id in ids
    everything = api.get(f"/api/batches/{seed.batch_id}/export?include_rejected=true&include_flagged=true")
    assert len(everything.text.splitlines()) == 3
    assert api.get("/api/batches/424242/export").status_code == 404

    depth = api.queue.llen("api-test")
    r = api.post(f"/api/items/{seed.flagged_id}/requeue")
    assert r.status_code == 202 and r.json()["queued"] is True
    assert api.queue.llen("api-test") == depth + 1
    with session_factory(seed.url)() as s:
        assert s.get(Item, seed.flagged_id).status == "queued"
        review = s.execute(select(Review).where(Review.item_id == seed.flagged_id)).scalar_one()
        assert review.decision == "requeue" and review.reviewer_name == "alice"
    again = api.post(f"/api/items/{seed.flagged_id}/requeue")
    assert again.status_code == 409 and "queued" in again.json()["detail"]
    assert api.post("/api/items/999999/requeue").status_code == 404


def test_openapi_schema_is_served_to_token_holders(api):
    schema = api.get("/api/openapi.json").json()
    assert {"/api/batches", "/api/batches/{batch_id}", "/api/batches/{batch_id}/export", "/api/items/{item_id}",
            "/api/items/{item_id}/requeue"} <= set(schema["paths"])
    assert httpx.get(api.base_url.join("/api/openapi.json")).status_code == 401
    assert httpx.get(api.base_url.join("/health")).json()["status"] == "ok"
