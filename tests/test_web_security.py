"""Web hardening of `hybridgen serve` against the real app (uvicorn + PostgreSQL): no route serves a
column as a file, security headers and a strict CSP on every response, redirects that ignore the
Host header, Swagger UI from this server, ids the database cannot hold, and NUL in stored text."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import func, select

from hybridgen.admin.services import AppServices
from hybridgen.admin.views import MODEL_VIEWS
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Batch, Item, Review
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data

pytestmark = pytest.mark.integration

JOB = {"kind": "article", "input": {"topic": "tea"}}


def serve(url: str, tmp_path, **settings_overrides):
    settings = Settings(data_dir=tmp_path / "data", database_url=url, **settings_overrides)
    return LiveServer(create_app(settings, AppServices(settings, session_factory(url), lambda ids: 1)))


@pytest.fixture
def site(migrated_pg, tmp_path, monkeypatch):
    # The server's working directory holds its data folder, as with `cd /srv/hybridgen && hybridgen serve`
    # and HYBRIDGEN_DATA_DIR=data: sqladmin's file routes resolved relative paths against it.
    monkeypatch.chdir(tmp_path)
    seed = seed_review_data(migrated_pg)
    with serve(migrated_pg, tmp_path) as server:
        admin = httpx.Client(base_url=server.url, timeout=30, follow_redirects=True)
        assert admin.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD}).url.path == "/admin/review"
        api = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {seed.token}"})
        yield server, seed, admin, api


def counts(url: str) -> tuple[int, int, int]:
    with session_factory(url)() as s:
        return tuple(s.execute(select(func.count()).select_from(t)).scalar_one() for t in (Batch, Item, Review))


def test_no_route_serves_a_column_as_a_file(site, tmp_path):
    server, seed, admin, api = site
    secret = (tmp_path / "data" / "secret_key").read_text().strip()  # the key that signs admin cookies
    (tmp_path / "data" / "hybridgen.sqlite").write_text("SQLITE-DATABASE-CONTENT")
    names = ["data/secret_key", str(tmp_path / "data" / "secret_key"), "data/hybridgen.sqlite", "./data/../data/secret_key"]
    batch_ids = []
    for i, name in enumerate(names):
        r = api.post("/api/batches", params={"name": name}, json=[{**JOB, "key": f"data/secret_key-{i}",
                                                                     "input": {"topic": f"files {i}"}}])
        assert r.status_code == 201, r.text
        batch_ids.append(r.json()["batch_id"])
    listed = admin.get(f"/admin/item/list?batch={batch_ids[0]}").text
    item_id = int(re.search(r"/admin/item/details/(\d+)", listed).group(1))
    targets = [f"batch/{b}/name" for b in batch_ids] + [f"item/{item_id}/client_key", f"item/{item_id}/kind"]
    for target in targets:
        for route in ("download/", "preview/", "download", "preview"):
            r = admin.get(f"/admin/{target}/{route}")
            assert r.status_code in (403, 404), (target, route, r.status_code)
            assert secret not in r.text and "SQLITE-DATABASE-CONTENT" not in r.text, (target, route)
    # and no route of the app is left that takes a column name
    paths = [getattr(r, "path", "") for r in server.server.config.app.routes]
    admin_app = next(r for r in server.server.config.app.routes if getattr(r, "path", "") == "/admin").app
    paths += [r.path for r in admin_app.routes]
    assert not [p for p in paths if "column" in p or p.endswith(("/download/", "/preview/"))], paths


def inline_code(html: str) -> list[str]:
    """Inline scripts, style elements, style attributes and event handlers: what the CSP forbids."""
    return (re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) + re.findall(r"<style[\s>]", html)
            + re.findall(r"\sstyle=\"", html) + re.findall(r"\son[a-z]+=\"", html))


def test_security_headers_on_every_response_and_no_inline_code(site):
    server, seed, admin, api = site
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    responses = {
        "health": anonymous.get("/health"),
        "login page": anonymous.get("/admin/login"),
        "redirect to login": anonymous.get("/admin/item/list", follow_redirects=False),
        "api without token": anonymous.get("/api/batches"),
        "sqladmin static": anonymous.get("/admin/statics/css/main.css"),
        "our static": anonymous.get("/static/hybridgen/review.css"),
        "not found": anonymous.get("/no/such/page"),
        "write guard refusal": admin.post("/admin/item/edit/1", data={"x": "y"}, follow_redirects=False),
        "item list": admin.get("/admin/item/list"),
        "item page": admin.get(f"/admin/item/details/{seed.flagged_id}"),
        "batch page": admin.get(f"/admin/batch/details/{seed.batch_id}"),
        "edit page": admin.get(f"/admin/review/item/{seed.hybrid_done_id}/edit"),
        "confirm page": admin.get(f"/admin/review/confirm?decision=approve&pks={seed.flagged_id}"),
        "logout page": admin.get("/admin/logout"),
        "admin 404": admin.get("/admin/item/details/999999"),
        "api docs": admin.get("/api/docs"),
        "api json": api.get(f"/api/batches/{seed.batch_id}"),
    }
    for what, r in responses.items():
        assert r.status_code < 500, (what, r.status_code)
        h = r.headers
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff", what
        assert h["referrer-policy"] == "same-origin", what
        csp = dict(part.strip().split(" ", 1) for part in h["content-security-policy"].split(";"))
        assert csp["frame-ancestors"] == "'none'" and csp["script-src"] == "'self'", (what, csp)
        assert csp["style-src"] == "'self'" and csp["default-src"] == "'none'", (what, csp)
        if h.get("content-type", "").startswith("text/html"):
            assert inline_code(r.text) == [], (what, inline_code(r.text))


def test_redirects_are_relative_whatever_the_host_header(site, migrated_pg, tmp_path):
    server, seed, admin, _ = site
    evil = {"Host": "evil.example"}
    anonymous = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
    cases = {
        "to login": anonymous.get("/admin/", headers=evil),
        "root": anonymous.get("/", headers=evil),
        "after login": anonymous.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD},
                                      headers=evil),
        "bulk action": admin.get(f"/admin/item/action/approve?pks={seed.flagged_id}", headers=evil,
                                 follow_redirects=False),
        "list page clamp": admin.get("/admin/item/list?page=99", headers=evil, follow_redirects=False),
    }
    for what, r in cases.items():
        assert r.is_redirect, (what, r.status_code)
        location = r.headers["location"]
        assert location.startswith("/") and not location.startswith("//") and "evil.example" not in location, \
            (what, location)
    # With HYBRIDGEN_ALLOWED_HOSTS the forged host is refused outright.
    with serve(migrated_pg, tmp_path, allowed_hosts="127.0.0.1,localhost") as strict:
        assert httpx.get(f"{strict.url}/admin/login", headers=evil).status_code == 400
        assert httpx.get(f"{strict.url}/admin/login").status_code == 200


def test_api_docs_load_only_same_origin_assets(site):
    server, seed, admin, api = site
    for client in (api, admin):  # a token holder, and a logged-in admin's browser
        page = client.get("/api/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) >= 4, assets
        assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
        assert "cdn" not in page.text and "http" not in page.text
        for asset in assets:
            r = httpx.get(server.url + asset)  # static library code: no login needed
            assert r.status_code == 200, asset
            assert r.headers["content-type"].split(";")[0] in ("text/css", "text/javascript", "application/javascript",
                                                               "image/png"), (asset, r.headers["content-type"])
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    assert len(httpx.get(server.url + bundle).content) > 500_000, "the real Swagger UI bundle"
    assert httpx.get(server.url + "/api/docs").status_code == 401


BAD_IDS = [2**31, 2**63, 2**64, -1, 0, "abc", "1.5", "٣"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=str)
def test_ids_the_database_cannot_hold_are_no_server_error(site, bad):
    server, seed, admin, api = site
    before = counts(seed.url)
    api_calls = [api.get(f"/api/batches/{bad}"), api.get(f"/api/batches/{bad}/export"), api.get(f"/api/items/{bad}"),
                 api.post(f"/api/items/{bad}/requeue"), api.get(f"/api/batches?before_id={bad}")]
    for r in api_calls:
        assert r.status_code in (404, 422), (str(r.request.url), r.status_code, r.text[:200])
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/admin/logout").text).group(1)
    admin_calls = [admin.get(f"/admin/{view.identity}/details/{bad}") for view in MODEL_VIEWS] + [
        admin.get(f"/admin/review/item/{bad}/edit"),
        admin.get(f"/admin/item/list?batch={bad}"),
        admin.get(f"/admin/item/list?page={bad}"),
        admin.get(f"/admin/item/list?pageSize={bad}"),
        admin.get(f"/admin/review/confirm?decision=approve&pks={bad}"),
        admin.get(f"/admin/item/action/approve?pks={bad}"),
        admin.post("/admin/review/decide", data={"csrf_token": token, "decision": "approve", "pks": str(bad)}),
    ]
    for r in admin_calls:
        assert r.status_code in (200, 400, 404, 422), (str(r.request.url), r.status_code, r.text[:200])
        assert "Traceback" not in r.text
    assert counts(seed.url) == before


def test_nul_in_stored_text_is_refused_naming_the_field(site):
    server, seed, admin, api = site
    before = counts(seed.url)
    r = api.post("/api/batches", params={"name": "crm\x00export"}, json=[JOB])
    assert r.status_code == 422, r.text
    problem = r.json()["detail"][0]
    assert problem["loc"] == ["query", "name"] and "NUL" in problem["msg"]
    for job, field in (({"kind": "article", "input": {"topic": "t\x00ea"}}, "input.topic"),
                       ({**JOB, "key": "k\x00"}, "key")):
        r = api.post("/api/batches", json=[job])
        assert r.status_code == 400 and r.json()["problems"][0]["field"] == field, r.text
    # the review app: a search, a login name, a note and an edit
    r = admin.get("/admin/item/list", params={"search": "a\x00b"})  # the list shows, saying the search was ignored
    assert r.status_code == 200 and "Filter ignored: search: NUL characters" in r.text
    r = httpx.post(server.url + "/admin/login", data={"username": "ali\x00ce", "password": ADMIN_PASSWORD})
    assert r.status_code == 400 and "Invalid credentials" in r.text
    page = admin.get(f"/admin/review/item/{seed.hybrid_done_id}/edit").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for form in ({"decision": "edit", "edited_output": "# Tea\n\nNUL\x00 here."},
                 {"decision": "approve", "note": "fine\x00"}):
        r = admin.post("/admin/review/decide", data={"csrf_token": token, "pks": str(seed.hybrid_done_id), **form})
        assert r.status_code == 200 and "NUL characters" in r.text, r.text[:300]  # the flash, after the redirect
    assert counts(seed.url) == before
