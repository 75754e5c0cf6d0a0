"""Review-app logins against the real app (uvicorn + PostgreSQL): the failed-login backoff and what it
keys on (client address as uvicorn is configured by `hybridgen serve`, the username as lookups see
it, known browsers), sessions the server ends (logout, password change, disabling), logout by POST."""

from __future__ import annotations

import re

import httpx
import pytest

from hybridgen.admin import ratelimit
from hybridgen.admin.ratelimit import LoginThrottle
from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from hybridgen.commands.serve import proxy_options
from service.accounts import set_disabled, set_password
from pipeline.settings import Settings
from service.storage.db import session_factory
from tests.live_server import LiveServer
from tests.review_fixtures import ADMIN, ADMIN_PASSWORD, seed_review_data

pytestmark = pytest.mark.integration

LIMIT = 2  # HYBRIDGEN_LOGIN_ATTEMPTS_PER_MINUTE in these tests


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def start(url: str, tmp_path, **overrides):
    """The app as `hybridgen serve` runs it with these settings (uvicorn's proxy options included)."""
    settings = Settings(data_dir=tmp_path / "data", database_url=url, login_attempts_per_minute=LIMIT, **overrides)
    app = create_app(settings, AppServices(settings, session_factory(url), lambda ids: 1))
    app.state.login_throttle.clock = clock = Clock()
    server = LiveServer(app, **proxy_options(settings))
    server.clock = clock
    return server


@pytest.fixture
def seeded(migrated_pg):
    return seed_review_data(migrated_pg)


def login(server, username=ADMIN, password=ADMIN_PASSWORD, client: httpx.Client | None = None,
          address: str | None = None) -> httpx.Response:
    client = client or httpx.Client(base_url=server.url, timeout=30)
    headers = {"X-Forwarded-For": address} if address else {}
    return client.post("/admin/login", data={"username": username, "password": password}, headers=headers)


def test_backoff_doubles_then_caps_and_is_forgotten():
    clock = Clock()
    throttle = LoginThrottle(2, clock=clock)
    key = "addr:203.0.113.9"
    throttle.record_failure(key)
    assert throttle.retry_after(key) == 0, "the first failures are free"
    waits = []
    for _ in range(9):
        throttle.record_failure(key)
        waits.append(throttle.retry_after(key))
        clock.now += waits[-1]  # wait it out, then fail again
    assert waits[:4] == [60, 120, 240, 480] and max(waits) == ratelimit.MAX_WAIT_S == waits[-1]
    clock.now += ratelimit.FORGET_S + 1
    throttle.record_failure(key)
    assert throttle.retry_after(key) == 0, "after a quiet spell the count starts again"


def test_forwarded_for_from_localhost_buys_no_extra_tries_by_default(migrated_pg, seeded, tmp_path):
    with start(migrated_pg, tmp_path) as server:
        for i in range(LIMIT):
            assert login(server, password="wrong", address=f"198.51.100.{i}").status_code == 400
        refused = login(server, address="198.51.100.200")  # right password, "new" address: still this client
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert login(server, username="someone-else", password="x", address="198.51.100.201").status_code == 429
    # Naming the proxy makes its header the client address: then each address has its own allowance.
    with start(migrated_pg, tmp_path, forwarded_allow_ips="127.0.0.1") as server:
        for _ in range(LIMIT):
            assert login(server, password="wrong", address="198.51.100.0").status_code == 400
        assert login(server, address="198.51.100.0").status_code == 429
        assert login(server, address="198.51.100.200").status_code == 302


def test_username_variants_share_one_allowance(migrated_pg, seeded, tmp_path):
    # Many addresses (a proxy that is believed) guessing one name in different spellings of it.
    variants = [f" {ADMIN}", f"{ADMIN} ", f"\t{ADMIN}\n", ADMIN]
    with start(migrated_pg, tmp_path, forwarded_allow_ips="127.0.0.1") as server:
        for i in range(LIMIT * ratelimit.NAME_FACTOR):
            r = login(server, username=variants[i % len(variants)], password="wrong", address=f"192.0.2.{i}")
            assert r.status_code == 400
        locked = login(server, address="192.0.2.250")  # a browser that never logged in, right password
        assert locked.status_code == 429
        assert login(server, username="someone-else", password="x", address="192.0.2.251").status_code == 400


def test_the_real_user_is_not_locked_out(migrated_pg, seeded, tmp_path):
    with start(migrated_pg, tmp_path, forwarded_allow_ips="127.0.0.1") as server:
        users_browser = httpx.Client(base_url=server.url, timeout=30)
        assert login(server, client=users_browser, address="203.0.113.7").status_code == 302  # logged in before
        # One address hammering the name only locks itself out.
        for _ in range(10):
            assert login(server, password="guess", address="198.51.100.66").status_code in (400, 429)
        assert login(server, address="198.51.100.66").status_code == 429
        assert login(server, address="203.0.113.99").status_code == 302, "another address gets in"
        # Many addresses: the name is locked for new browsers, not for the user's own.
        for i in range(LIMIT * ratelimit.NAME_FACTOR):
            login(server, password="guess", address=f"198.51.100.{100 + i}")
        assert login(server, address="203.0.113.100").status_code == 429, "a new browser waits"
        users_browser.cookies.delete("hybridgen_session")
        assert login(server, client=users_browser, address="203.0.113.101").status_code == 302, \
            "the browser that logged in before still gets in"
        # The lock is not forever: it expires on its own.
        server.clock.now += ratelimit.FIRST_WAIT_S + 1
        assert login(server, address="203.0.113.102").status_code == 302


def logged_in(server) -> tuple[httpx.Client, httpx.Client]:
    """A logged-in client, and a second client holding a copy of its session cookie."""
    client = httpx.Client(base_url=server.url, timeout=30)
    assert login(server, client=client).status_code == 302
    copy = httpx.Client(base_url=server.url, timeout=30, cookies={"hybridgen_session": client.cookies["hybridgen_session"]})
    assert can_read(copy)
    return client, copy


def can_read(client: httpx.Client) -> bool:
    r = client.get("/admin/item/list", follow_redirects=False)
    docs = client.get("/api/docs")
    assert (r.status_code == 200) == (docs.status_code == 200), "the API docs accept the same sessions"
    return r.status_code == 200


def csrf(client: httpx.Client, path: str = "/admin/logout") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def test_logout_password_change_and_disabling_end_copied_sessions(migrated_pg, seeded, tmp_path):
    sessions = session_factory(migrated_pg)
    with start(migrated_pg, tmp_path) as server:
        client, copy = logged_in(server)
        assert client.post("/admin/logout", data={"csrf_token": csrf(client)}).status_code == 302
        assert not can_read(copy), "a copy of the cookie dies with the logout"

        client, copy = logged_in(server)
        with sessions.begin() as s:
            set_password(s, ADMIN, ADMIN_PASSWORD + "!")
        assert not can_read(copy) and not can_read(client)
        with sessions.begin() as s:
            set_password(s, ADMIN, ADMIN_PASSWORD)

        client, copy = logged_in(server)
        with sessions.begin() as s:
            set_disabled(s, ADMIN, True)
        assert not can_read(copy)
        with sessions.begin() as s:
            set_disabled(s, ADMIN, False)
        assert not can_read(copy), "enabling the user again does not bring old sessions back"
        assert logged_in(server), "a fresh login works"


def test_logout_is_a_post_with_the_csrf_token(migrated_pg, seeded, tmp_path):
    with start(migrated_pg, tmp_path) as server:
        client, _ = logged_in(server)
        page = client.get("/admin/logout")
        assert page.status_code == 200 and 'method="post"' in page.text and 'id="logout-confirm"' in page.text
        assert can_read(client), "GET /admin/logout (a link, an <img> elsewhere) logs nobody out"
        assert client.post("/admin/logout").status_code == 403
        assert client.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 403
        cross = client.post("/admin/logout", data={"csrf_token": csrf(client)}, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
        assert can_read(client)
        done = client.post("/admin/logout", data={"csrf_token": csrf(client)})
        assert done.status_code == 302 and done.headers["location"] == "/admin/login"
        assert not can_read(client)
        anonymous = httpx.Client(base_url=server.url, timeout=30)
        assert anonymous.get("/admin/logout").headers["location"] == "/admin/login"
