"""Hostile bodies through the real HTTP API (uvicorn + PostgreSQL), property-based.

The same strategies as the spec and CLI tests (tests/bad_input_strategies.py): every bad body is
answered 400 naming each bad line (array element), field and expectation, and the database is
exactly as it was. Unstructured fuzz never gets a server error.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings
from service.spec import SpecError, parse_submission
from service.storage.db import session_factory
from service.storage.models import Batch, Item
from tests.bad_input_strategies import BadBatch, BadJob, any_bytes, bad_batches, bad_jobs, good_job, json_lines
from tests.live_server import LiveServer
from tests.review_fixtures import seed_review_data

pytestmark = pytest.mark.integration

HTTP = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def api(migrated_pg, tmp_path):
    seed = seed_review_data(migrated_pg)
    settings_ = Settings(data_dir=tmp_path / "data", database_url=migrated_pg)
    sessions = session_factory(migrated_pg)
    app = create_app(settings_, AppServices(settings_, sessions, lambda ids: 1))
    with LiveServer(app) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {seed.token}"},
                          timeout=60) as client:
            client.counts = lambda: _counts(sessions)
            yield client


def _counts(sessions) -> tuple[int, int]:
    with sessions() as s:
        return (s.execute(select(func.count()).select_from(Batch)).scalar_one(),
                s.execute(select(func.count()).select_from(Item)).scalar_one())


def assert_problems_name(problems: list[dict], expected: dict[int, tuple[str, str]]) -> None:
    assert {p["line"] for p in problems} == set(expected), problems
    for line, (field, phrase) in expected.items():
        mine = [p for p in problems if p["line"] == line]
        assert any((not field or p["field"] == field) and phrase in p["message"] for p in mine), (line, mine)


def test_bad_jsonl_bodies(api):
    @HTTP
    @given(bad_batches())
    def check(batch: BadBatch):
        before = api.counts()
        r = api.post("/api/batches", content=batch.data, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 400, r.text[:500]
        assert "nothing was stored" in r.json()["detail"]
        assert_problems_name(r.json()["problems"], batch.expected)
        assert api.counts() == before

    check()


def test_bad_json_array_bodies(api):
    @HTTP
    @given(st.lists(st.integers(0, 2), max_size=3), bad_jobs(), st.data())
    def check(good, bad: BadJob, data):
        items = [good_job(i) for i in range(len(good))]
        at = data.draw(st.integers(0, len(items)))
        items.insert(at, bad.value)
        try:
            body, expected = json.dumps(items, allow_nan=False), {at + 1: (bad.field, bad.phrase)}
        except ValueError:  # NaN / infinity: no JSON body can carry them, so the body is what's refused
            body, expected = json.dumps(items), {0: ("", "invalid JSON")}
        before = api.counts()
        r = api.post("/api/batches", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text[:500]
        assert_problems_name(r.json()["problems"], expected)
        assert api.counts() == before

    check()


def test_fuzzed_bodies_never_break_the_server(api):
    @HTTP
    @given(st.one_of(any_bytes(), json_lines(), st.binary(max_size=50).map(lambda b: b"[" + b)))
    def check(body: bytes):
        before = api.counts()
        r = api.post("/api/batches", content=body)
        try:
            parse_submission(body)
            valid = True
        except SpecError:
            valid = False
        if valid:
            assert r.status_code in (200, 201), r.text[:300]
        else:
            assert r.status_code == 400, r.text[:300]
            assert r.json()["problems"] and all(p["message"] for p in r.json()["problems"])
            assert api.counts() == before

    check()
