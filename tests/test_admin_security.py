"""Review app and API security: every route needs auth, login limits, CSRF, hostile filter values."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select
from starlette.routing import Mount, Route

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Item, Review
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data

pytestmark = pytest.mark.integration

# Answer without a login by design: the health probe, the login page itself, and static CSS/JS
# (sqladmin's, ours and Swagger UI's: library code, no data).
PUBLIC = {"/health", "/admin/login"}
PUBLIC_PREFIXES = ("/admin/statics", "/static/")


@pytest.fixture
def site(migrated_pg, tmp_path):
    seed = seed_review_data(migrated_pg)
    settings = Settings(data_dir=tmp_path / "data", database_url=migrated_pg, login_attempts_per_minute=3)
    queued: list[list[int]] = []
    services = AppServices(settings, session_factory(migrated_pg), lambda ids: queued.append(list(ids)) or 1)
    app = create_app(settings, services)
    with LiveServer(app) as server:
        yield app, server, seed, queued


def login(base_url: str, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=base_url, timeout=30)
    r = client.post("/admin/login", data={"username": username, "password": password})
    return client, r


def all_routes(app) -> list[tuple[str, set[str]]]:
    """(path template, methods) of every route, descending into mounts and included routers."""
    found: list[tuple[str, set[str]]] = []

    def walk(routes, prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                if route.routes:
                    walk(route.routes, prefix + route.path)
                else:
                    found.append((prefix + route.path + "/{file}", {"GET"}))
            elif isinstance(route, Route) or hasattr(route, "methods"):
                found.append((prefix + route.path, set(route.methods or {"GET"}) - {"HEAD"}))
            elif hasattr(route, "original_router"):  # FastAPI's included router
                walk(route.original_router.routes, prefix)

    walk(app.routes, "")
    return found


def concrete(path: str, seed) -> str:
    values = {"pk": seed.flagged_id, "identity": "item", "batch_id": seed.batch_id, "item_id": seed.flagged_id,
              "export_type": "csv", "column_name": "output", "file": "css/main.css"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: str(values.get(m.group(1), 1)), path)


def test_every_route_refuses_anonymous_requests(site):
    app, server, seed, _ = site
    routes = all_routes(app)
    assert len(routes) > 20 and any(p.startswith("/admin/") for p, _ in routes) and \
        any(p.startswith("/api/") for p, _ in routes)
    checked = 0
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        for template, methods in routes:
            path = concrete(template, seed)
            if path in PUBLIC or path.startswith(PUBLIC_PREFIXES):
                continue
            for method in methods:
                r = anonymous.request(method, path, data={"decision": "approve", "pks": str(seed.flagged_id)})
                if r.is_redirect:
                    assert httpx.URL(r.headers["location"]).path in {"/admin/login", "/admin/"}, (method, path)
                else:
                    assert r.status_code in (401, 403, 404, 405), (method, path, r.status_code, r.text[:200])
                checked += 1
    assert checked > 20
    with session_factory(seed.url)() as s:  # and nothing changed on the way
        assert s.execute(select(func.count()).select_from(Review)).scalar_one() == 0
        assert s.get(Item, seed.flagged_id).status == "flagged"


def test_wrong_passwords_are_rate_limited(site):
    _, server, _, _ = site
    client, r = login(server.url, password="wrong")
    assert r.status_code == 400 and "Invalid credentials" in r.text
    for _ in range(2):
        assert login(server.url, password="wrong")[1].status_code == 400
    locked_client, locked = login(server.url)  # the right password, but locked out for a while
    assert locked.status_code == 429 and "Try again in" in locked.text and int(locked.headers["retry-after"]) > 0
    assert locked_client.get("/admin/item/list", follow_redirects=False).status_code == 302
    # The limit also holds per client address, whatever username is tried next.
    assert login(server.url, username="someone-else", password="guess")[1].status_code == 429


def test_login_logout_and_session(site):
    _, server, seed, _ = site
    client, r = login(server.url)
    assert r.status_code == 302 and httpx.URL(r.headers["location"]).path == "/admin/review"  # the review queue
    assert "hybridgen_session" in client.cookies
    assert client.get(f"/admin/item/details/{seed.flagged_id}").status_code == 200
    page = client.get("/admin/logout")  # a page with a POST form: a GET alone does not log out
    assert page.status_code == 200 and 'id="logout-confirm"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/admin/logout", data={"csrf_token": token})
    assert client.get(f"/admin/item/details/{seed.flagged_id}", follow_redirects=False).status_code == 302


@pytest.mark.parametrize("query", [
    "status=' OR '1'='1",
    "batch=1;DROP TABLE items;--",
    "failing=%25' OR 1=1 --",
    "kind=article' UNION SELECT password_hash FROM users --",
    "search=' OR 1=1 --",
    "path=hybrid\"; DELETE FROM items; --",
    "sortBy=id;DROP TABLE items&sort=desc",
])
def test_sql_injection_shaped_filters_are_harmless(site, query):
    _, server, seed, _ = site
    client, _ = login(server.url)
    r = client.get(f"/admin/item/list?{query}")
    assert r.status_code in (200, 400), r.text[:300]
    assert "scrypt$" not in r.text
    with session_factory(seed.url)() as s:
        assert s.execute(select(func.count()).select_from(Item)).scalar_one() == 3


def test_filters_narrow_the_list(site):
    _, server, seed, _ = site
    client, _ = login(server.url)
    def ids(query: str) -> set[int]:
        html = client.get(f"/admin/item/list?{query}").text
        return {int(x) for x in re.findall(r"/admin/item/details/(\d+)", html)}
    assert ids("status=flagged") == {seed.flagged_id}
    assert ids("failing=contradiction") == {seed.flagged_id}
    assert ids("path=hybrid") == {seed.hybrid_done_id}
    assert ids(f"batch={seed.batch_id}&status=done") == {seed.hybrid_done_id, seed.fallback_done_id}
    assert ids("kind=code") == set()


def test_csrf_and_write_guard(site):
    _, server, seed, queued = site
    client, _ = login(server.url)
    page = client.get(f"/admin/item/details/{seed.flagged_id}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"decision": "approve", "pks": str(seed.flagged_id)}
    assert client.post("/admin/review/decide", data=form).status_code == 403  # no token
    assert client.post("/admin/review/decide", data={**form, "csrf_token": "forged"}).status_code == 403
    cross = client.post("/admin/review/decide", data={**form, "csrf_token": token},
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.text
    # sqladmin's own write endpoints are closed even to a logged-in admin.
    assert client.post(f"/admin/item/edit/{seed.flagged_id}", data={"output": "x"}).status_code == 403
    assert client.request("DELETE", f"/admin/item/delete?pks={seed.flagged_id}").status_code == 403
    with session_factory(seed.url)() as s:
        assert s.execute(select(func.count()).select_from(Review)).scalar_one() == 0

    ok = client.post("/admin/review/decide", data={**form, "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303
    with session_factory(seed.url)() as s:
        review = s.execute(select(Review)).scalar_one()
        assert (review.decision, review.reviewer_name, review.item_id) == ("approve", ADMIN, seed.flagged_id)
        assert s.get(Item, seed.flagged_id).review_status == "approved"


def test_review_actions_edit_reject_requeue_and_missing_items(site):
    _, server, seed, queued = site
    client, _ = login(server.url)
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get(f"/admin/review/item/{seed.hybrid_done_id}/edit").text).group(1)

    def decide(**form):
        return client.post("/admin/review/decide", data={"csrf_token": token, **form}, follow_redirects=False)

    assert decide(decision="edit", pks=str(seed.hybrid_done_id), edited_output="# Tea\n\nFixed.").status_code == 303
    assert decide(decision="reject", pks=f"{seed.fallback_done_id}", note="off topic").status_code == 303
    assert decide(decision="requeue", pks=str(seed.flagged_id)).status_code == 303
    assert queued == [[seed.flagged_id]]
    with session_factory(seed.url)() as s:
        assert s.get(Item, seed.hybrid_done_id).edited_output == "# Tea\n\nFixed."
        assert s.get(Item, seed.fallback_done_id).review_status == "rejected"
        assert s.get(Item, seed.flagged_id).status == "queued"
        decisions = [r.decision for r in s.execute(select(Review).order_by(Review.id)).scalars()]
        assert decisions == ["edit", "reject", "requeue"]

    # Missing items: a 404 page, or a "skipped" note, never a server error.
    assert client.get("/admin/item/details/999999").status_code == 404
    assert client.get("/admin/review/item/999999/edit").status_code == 404
    r = decide(decision="requeue", pks="999999")
    assert r.status_code == 303
    assert decide(decision="approve", pks="1 OR 1=1").status_code == 400
    assert client.get("/admin/review/confirm?decision=drop&pks=1").status_code == 400


def test_bulk_approve_from_the_list_goes_through_a_confirmed_post(site):
    _, server, seed, _ = site
    client, _ = login(server.url)
    pks = f"{seed.hybrid_done_id},{seed.fallback_done_id}"
    action = client.get(f"/admin/item/action/approve?pks={pks}", follow_redirects=False)
    assert action.status_code == 303 and "/admin/review/confirm" in action.headers["location"]
    with session_factory(seed.url)() as s:  # following a link changes nothing by itself
        assert s.execute(select(func.count()).select_from(Review)).scalar_one() == 0
    confirm = client.get(action.headers["location"])
    assert confirm.status_code == 200 and f"#{seed.hybrid_done_id}" in confirm.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text).group(1)
    done = client.post("/admin/review/decide", data={"csrf_token": token, "decision": "approve", "pks": pks,
                                                     "next": "https://evil.example/"}, follow_redirects=False)
    assert done.status_code == 303 and httpx.URL(done.headers["location"]).host in ("127.0.0.1", "")
    with session_factory(seed.url)() as s:
        reviews = s.execute(select(Review).order_by(Review.item_id)).scalars().all()
        assert [(r.item_id, r.decision, r.reviewer_name) for r in reviews] == \
            [(seed.hybrid_done_id, "approve", ADMIN), (seed.fallback_done_id, "approve", ADMIN)]
        assert all(r.created_at is not None for r in reviews)


def test_batch_page_shows_progress_pass_and_fallback_rates(site):
    _, server, seed, _ = site
    client, _ = login(server.url)
    html = client.get(f"/admin/batch/details/{seed.batch_id}").text
    assert "3 of 3 finished" in html
    assert re.search(r'id="pass-rate">66\.7%', html)  # 2 done of 3 finished
    assert re.search(r'id="fallback-rate">66\.7%', html)  # 2 AR fallbacks after 3 hybrid attempts
