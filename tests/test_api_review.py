"""The review API (issue 25, item 7) against the real app on PostgreSQL, queueing on Redis: GET /api/items
with the review list's filters and cursor paging, POST /api/items/{id}/review for each decision, the
token on every new route, webhook URLs at submission, and resubmissions in another mode or model
refused (issue 26)."""

from __future__ import annotations

import json

import httpx
import pytest
import redis
from sqlalchemy import select

from hybridgen.app import create_app
from pipeline.settings import Settings
from service.accounts import create_token, revoke_token
from service.storage.db import session_factory
from service.storage.models import ApiToken, Batch, Item, Review
from service.storage.queries import AttemptRecord, claim_items, finish_item
from service.storage.types import utcnow
from service.spec import parse_array
from service.submission import submit_batch
from service.storage.models import ItemStatus
from service.webhook import PARAM
from tests.live_server import LiveServer
from tests.review_fixtures import seed_review_data

pytestmark = pytest.mark.integration

HOOKS = "https://hooks.example.com/"


def settings_for(url, redis_url, tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=url, broker_url=redis_url, queue_name="review-api",
                    webhook_allowed_prefixes=HOOKS, webhook_secret="s", **kw)


@pytest.fixture
def api(migrated_pg, redis_url, tmp_path):
    seed = seed_review_data(migrated_pg)
    with LiveServer(create_app(settings_for(migrated_pg, redis_url, tmp_path))) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {seed.token}"}, timeout=30) as client:
            client.seed = seed
            client.queue = redis.Redis.from_url(redis_url)
            client.tmp_path, client.redis_url = tmp_path, redis_url
            yield client


def add_products(url: str) -> list[int]:
    """Three flagged products, one failing degeneration on a field (`degeneration[description]`)."""
    sessions = session_factory(url)
    jobs = [{"kind": "product", "input": {"name": f"Aurora {c}", "attributes": {"colour": c}}} for c in
            ("red", "blue", "green")]
    result = submit_batch(sessions, parse_array(jobs), name="products", mode="ar")
    with sessions.begin() as s:
        claims = claim_items(s, result.new_item_ids, "w", utcnow())
        for i, claim in enumerate(claims):
            name = "degeneration[description]" if i == 0 else "json_schema"
            output = json.dumps({"title": f"Aurora {i}", "description": "a mug a mug a mug"})
            finish_item(s, claim, "w", status=ItemStatus.flagged, final_path="ar", output=output,
                        attempts=[AttemptRecord("ar", False, output, [
                            {"validator": name, "passed": False, "message": f"{name} failed", "evidence": []}])])
    return result.new_item_ids


# -- auth on every new route ----------------------------------------------------------------------------
ROUTES = [("GET", "/api/items", None), ("POST", "/api/items/{id}/review", {"decision": "approve"}),
          ("GET", "/api/batches/{batch}/export?reviewed_only=true", None)]


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_each_new_route_needs_a_valid_token(api, method, path, body):
    seed = api.seed
    url = api.base_url.join(path.format(id=seed.flagged_id, batch=seed.batch_id))
    with session_factory(seed.url).begin() as s:
        revoked = create_token(s, "alice", "old")
        revoke_token(s, s.execute(select(ApiToken).where(ApiToken.name == "old")).scalar_one().id)
    for headers in ({}, {"Authorization": "Bearer hg_not-a-token"}, {"Authorization": f"Bearer {revoked.token}"}):
        r = httpx.request(method, url, headers=headers, json=body)
        assert r.status_code == 401, (headers, r.status_code, r.text)
    with session_factory(seed.url)() as s:
        assert s.execute(select(Review)).first() is None, "nothing was decided without a valid token"
    assert api.request(method, path.format(id=seed.flagged_id, batch=seed.batch_id), json=body).status_code == 200


# -- the list: filters, paging, bad parameters --------------------------------------------------------------
def ids_of(r) -> list[int]:
    assert r.status_code == 200, r.text
    return [row["item_id"] for row in r.json()["items"]]


def test_list_filters_as_the_review_list_does(api):
    seed = api.seed
    products = add_products(seed.url)
    assert ids_of(api.get("/api/items", params={"batch": seed.batch_id})) == \
        sorted([seed.flagged_id, seed.hybrid_done_id, seed.fallback_done_id])
    assert ids_of(api.get("/api/items", params={"status": "flagged", "kind": "article"})) == [seed.flagged_id]
    assert ids_of(api.get("/api/items", params={"kind": "product"})) == products
    # `degeneration` also finds the product whose description degenerated
    assert ids_of(api.get("/api/items", params={"failing": "degeneration"})) == [products[0]]
    assert ids_of(api.get("/api/items", params={"failing": "json_schema"})) == products[1:]
    assert ids_of(api.get("/api/items", params={"q": "museum"})) == [seed.flagged_id], "full text over the input"
    assert ids_of(api.get("/api/items", params={"q": "Aurora blue"})) == [products[1]]
    api.post(f"/api/items/{seed.hybrid_done_id}/review", json={"decision": "approve"})
    assert ids_of(api.get("/api/items", params={"review": "approved"})) == [seed.hybrid_done_id]
    not_reviewed = ids_of(api.get("/api/items", params={"review": "none", "batch": seed.batch_id}))
    assert not_reviewed == [seed.flagged_id, seed.fallback_done_id]
    row = api.get("/api/items", params={"failing": "degeneration"}).json()["items"][0]
    assert row["title"] == "Aurora 0" and row["message"] == "degeneration[description]: degeneration[description] failed"
    assert row["decision"] == "unreviewed-flagged" and row["failing"] == ["degeneration[description]"]
    assert row["links"]["review"] == f"/api/items/{products[0]}/review"


def test_cursor_paging_is_stable_and_complete(api):
    add_products(api.seed.url)
    seen, cursor, pages = [], None, 0
    while True:
        r = api.get("/api/items", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        seen += ids_of(r)
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 6 and seen == sorted(seen) and len(set(seen)) == 6
    with session_factory(api.seed.url)() as s:
        assert seen == sorted(s.execute(select(Item.id)).scalars())
    first = api.get("/api/items", params={"limit": 2}).json()
    other = api.get("/api/items", params={"limit": 2, "kind": "product", "cursor": first["next_cursor"]})
    assert other.status_code == 422 and "cursor: it was made for other filters" in other.json()["detail"]


@pytest.mark.parametrize("params, named", [
    ({"status": "finished"}, "status:"), ({"batch": "abc"}, "batch:"), ({"kind": "poem"}, "kind:"),
    ({"review": "maybe"}, "review:"), ({"failing": "x; drop table"}, "failing:"), ({"cursor": "not-a-cursor"}, "cursor:"),
    ({"cursor": "djE6eDp5"}, "cursor:"), ({"q": "x" * 300}, "q:"), ({"path": "fast"}, "path:"),
])
def test_bad_parameters_are_a_422_naming_them(api, params, named):
    r = api.get("/api/items", params=params)
    assert r.status_code == 422 and r.json()["detail"].startswith(named), r.text


def test_bad_limit_is_a_422_naming_it(api):
    r = api.get("/api/items", params={"limit": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]


# -- decisions ------------------------------------------------------------------------------------------
def reviews_of(url: str, item_id: int) -> list[tuple[str, str]]:
    with session_factory(url)() as s:
        return [(r.decision, r.reviewer_name) for r in
                s.execute(select(Review).where(Review.item_id == item_id).order_by(Review.id)).scalars()]


def test_approve_reject_and_edit_are_stored_as_reviews(api):
    seed = api.seed
    r = api.post(f"/api/items/{seed.flagged_id}/review", json={"decision": "approve", "note": "checked"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["review_status"] == "approved" and body["export_decision"] == "approved" and body["status"] == "flagged"
    assert reviews_of(seed.url, seed.flagged_id) == [("approve", "alice")]
    assert api.post(f"/api/items/{seed.hybrid_done_id}/review", json={"decision": "reject"}).json()["export_decision"] \
        == "rejected"
    edit = api.post(f"/api/items/{seed.fallback_done_id}/review",
                    json={"decision": "edit", "edited_output": "# Tea\n\nBetter.\n"})
    assert edit.status_code == 200 and edit.json()["export_decision"] == "edited"
    with session_factory(seed.url)() as s:
        assert s.get(Item, seed.fallback_done_id).edited_output == "# Tea\n\nBetter.\n"
        review = s.get(Review, edit.json()["review_id"])
        assert review.decision == "edit" and review.previous["review_status"] is None, "undoable like the UI's"
    empty = api.post(f"/api/items/{seed.fallback_done_id}/review", json={"decision": "edit", "edited_output": " "})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]


def test_use_attempt_and_its_errors(api):
    seed = api.seed
    item = api.get(f"/api/items/{seed.flagged_id}").json()
    hybrid = next(a for a in item["attempts"] if a["path"] == "hybrid")
    other = api.get(f"/api/items/{seed.hybrid_done_id}").json()["attempts"][0]
    wrong = api.post(f"/api/items/{seed.flagged_id}/review", json={"decision": "use_attempt", "attempt_id": other["id"]})
    assert wrong.status_code == 422 and "not one of its attempts" in wrong.json()["detail"]
    r = api.post(f"/api/items/{seed.flagged_id}/review", json={"decision": "use-attempt", "attempt_id": hybrid["id"]})
    assert r.status_code == 200 and r.json()["decision"] == "use_attempt" and r.json()["export_decision"] == "edited"
    assert api.get(f"/api/items/{seed.flagged_id}").json()["output"] == hybrid["output"]
    with session_factory(seed.url)() as s:
        assert s.execute(select(Review.attempt_id).where(Review.item_id == seed.flagged_id)).scalar_one() == hybrid["id"]


def test_requeue_enqueues_and_then_waits(api):
    seed = api.seed
    depth = api.queue.llen("review-api")
    r = api.post(f"/api/items/{seed.flagged_id}/review", json={"decision": "requeue"})
    assert r.status_code == 200 and r.json()["queued"] is True and r.json()["export_decision"] == "pending"
    assert api.queue.llen("review-api") == depth + 1
    assert reviews_of(seed.url, seed.flagged_id) == [("requeue", "alice")]
    again = api.post(f"/api/items/{seed.flagged_id}/review", json={"decision": "approve"})
    assert again.status_code == 409 and "queued" in again.json()["detail"]


@pytest.mark.parametrize("body, named", [
    ({"decision": "maybe"}, "decision"), ({"decision": "edit"}, "edited_output"),
    ({"decision": "use_attempt"}, "attempt_id"), ({"decision": "approve", "attempt_id": 3}, "attempt_id"),
    ({"decision": "approve", "colour": "red"}, "colour"), ({}, "decision"),
])
def test_bad_review_bodies_are_a_422_naming_the_field(api, body, named):
    r = api.post(f"/api/items/{api.seed.flagged_id}/review", json=body)
    assert r.status_code == 422, r.text
    assert named in json.dumps(r.json()["detail"])
    assert reviews_of(api.seed.url, api.seed.flagged_id) == []


def test_review_of_a_missing_item_and_a_huge_body(api):
    assert api.post("/api/items/999999/review", json={"decision": "approve"}).status_code == 404
    huge = api.post(f"/api/items/{api.seed.flagged_id}/review", content=b"x" * (2 * 1024 * 1024))
    assert huge.status_code == 413


def test_new_routes_are_in_the_openapi_schema(api):
    paths = api.get("/api/openapi.json").json()["paths"]
    assert "get" in paths["/api/items"] and "post" in paths["/api/items/{item_id}/review"]
    assert {p["name"] for p in paths["/api/items"]["get"]["parameters"]} >= {"batch", "status", "q", "cursor", "review"}


# -- submission: webhook URLs, and resubmission in another mode or model (issue 26) ------------------------
JOBS = [{"kind": "article", "input": {"topic": "tea"}}, {"kind": "article", "input": {"topic": "coffee"}}]


def test_webhook_urls_are_checked_at_submission(api):
    refused = api.post("/api/batches", params={"webhook": "http://169.254.169.254/latest"}, json=JOBS)
    assert refused.status_code == 400 and refused.json()["detail"].startswith("webhook:")
    assert "not under an allowed prefix" in refused.json()["detail"]
    ok = api.post("/api/batches", params={"webhook": HOOKS + "crm", "mode": "ar"}, json=JOBS)
    assert ok.status_code == 201, ok.text
    with session_factory(api.seed.url)() as s:
        assert s.get(Batch, ok.json()["batch_id"]).params[PARAM] == HOOKS + "crm"


def test_resubmitting_in_another_mode_or_model_is_refused_unless_new_batch(api):
    first = api.post("/api/batches", params={"mode": "ar"}, json=JOBS)
    assert first.status_code == 201
    with session_factory(api.seed.url)() as s:
        batches_before = len(s.execute(select(Batch.id)).all())
    again = api.post("/api/batches", params={"mode": "hybrid"}, json=JOBS)
    assert again.status_code == 409
    assert "stored already as batch" in again.json()["detail"] and "mode ar (asked: hybrid)" in again.json()["detail"]
    assert "new_batch=true" in again.json()["detail"]
    with session_factory(api.seed.url)() as s:
        assert len(s.execute(select(Batch.id)).all()) == batches_before, "nothing stored"
    same = api.post("/api/batches", params={"mode": "ar"}, json=JOBS)
    assert same.status_code == 200 and same.json()["batch_id"] == first.json()["batch_id"]
    copy = api.post("/api/batches", params={"mode": "hybrid", "new_batch": "true"}, json=JOBS)
    assert copy.status_code == 201 and copy.json()["batch_id"] != first.json()["batch_id"]

    # The same jobs sent to a server whose workers run another model.
    other = settings_for(api.seed.url, api.redis_url, api.tmp_path, model="tiny-qwen2")
    with LiveServer(create_app(other)) as server:
        r = httpx.post(f"{server.url}/api/batches", params={"mode": "ar"}, json=JOBS,
                       headers={"Authorization": f"Bearer {api.seed.token}"})
    assert r.status_code == 409 and "(asked: tiny-qwen2)" in r.json()["detail"], r.text
