"""Hostile input, property-based: malformed JSONL, wrong types, huge fields, non-UTF-8 bytes, deep nesting.

Through `service.spec` and through `hybridgen submit`: always a SpecError / a clear CLI error that
names every bad line (and the field, where there is one), and the database and the queue are left
exactly as they were. The strategies live in tests/bad_input_strategies.py (the HTTP API tests use
them too).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hybridgen.cli import cli
from pipeline.settings import Settings
from service.spec import SpecError, parse_array, parse_jsonl
from service.storage.db import dispose_engines, session_factory
from service.storage.models import Attempt, Batch, Item
from tests.bad_input_strategies import BadBatch, BadJob, any_bytes, bad_batches, bad_jobs, good_job, json_lines

# No example database (nothing written into the checkout); no deadline (a loaded CI machine is slow).
FAST = settings(max_examples=150, deadline=None, database=None)
SLOW = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_names(problems, expected: dict[int, tuple[str, str]]) -> None:
    """Every bad line is reported with its field and phrase; no good line is blamed."""
    assert {p.line_no for p in problems} == set(expected), [str(p) for p in problems]
    for line_no, (field, phrase) in expected.items():
        mine = [p for p in problems if p.line_no == line_no]
        assert any((not field or p.field == field) and phrase in p.message for p in mine), \
            (line_no, field, phrase, [str(p) for p in mine])
        assert all(str(p).startswith(f"line {line_no}: ") and p.message for p in mine)


@FAST
@given(bad_batches())
def test_jsonl_names_every_bad_line(batch: BadBatch):
    with pytest.raises(SpecError) as info:
        parse_jsonl(batch.data, source="jobs.jsonl")
    assert_names(info.value.problems, batch.expected)
    assert str(info.value).startswith("jobs.jsonl: ") and "nothing was stored" in str(info.value)


@FAST
@given(st.lists(st.integers(0, 2), max_size=4), bad_jobs(), st.data())
def test_json_array_names_the_bad_element(good, bad: BadJob, data):
    items = [good_job(i) for i in range(len(good))]
    at = data.draw(st.integers(0, len(items)))
    items.insert(at, bad.value)
    with pytest.raises(SpecError) as info:
        parse_array(items)
    assert_names(info.value.problems, {at + 1: (bad.field, bad.phrase)})


@FAST
@given(st.one_of(any_bytes(), json_lines()))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes):
    try:
        parsed = parse_jsonl(data)
    except SpecError as e:
        n_lines = data.count(b"\n") + 1
        assert e.problems and all(0 <= p.line_no <= n_lines and str(p) for p in e.problems)
    else:
        assert parsed.jobs and len(parsed.content_sha256) == 64


PRODUCT = '{"kind": "product", "input": {"name": "n", "attributes": {"a": %s}}}'


@pytest.mark.parametrize("line, expected", [
    # Regressions: each of these was accepted by the parser and then failed inside PostgreSQL (or
    # crashed json.loads), instead of being a clear error naming the line.
    (PRODUCT % "NaN", "line 1: invalid JSON: NaN is not a JSON number"),
    (PRODUCT % "-Infinity", "line 1: invalid JSON: -Infinity is not a JSON number"),
    (PRODUCT % "1e400", "line 1: invalid JSON: number '1e400' is out of range"),
    (PRODUCT % ("7" * 5000), "line 1: invalid JSON: integer with 5000 digits is too long (at most 50)"),
    ('{"kind": "article", "input": {"topic": "a\\u0000b"}}',
     "line 1: input.topic: NUL characters (\\u0000) are not allowed in text"),
    (PRODUCT % '"x", "b\\u0000": 1', "line 1: input.attributes: NUL characters (\\u0000) are not allowed in keys"),
])
def test_values_no_database_stores_are_refused_by_the_parser(line, expected):
    with pytest.raises(SpecError) as info:
        parse_jsonl(line)
    assert [str(p) for p in info.value.problems] == [expected]


def test_non_finite_numbers_in_a_json_array_are_named():
    with pytest.raises(SpecError) as info:
        parse_array([good_job(0), json.loads(PRODUCT % "1", parse_int=lambda _: float("inf"))])
    assert [str(p) for p in info.value.problems] == ["line 2: input.attributes.a: expected a finite number, got inf"]


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def cli_env(request, tmp_path, monkeypatch):
    """An installation that already holds one batch, so "unchanged" means something. PostgreSQL
    too: it refuses values SQLite stores (NUL characters, NaN), and must never be asked to."""
    (tmp_path / "data").mkdir()  # a data folder must exist: hybridgen refuses a mistyped one
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(tmp_path / "data"))
    if request.param == "postgresql":
        monkeypatch.setenv("HYBRIDGEN_DATABASE_URL", request.getfixturevalue("migrated_pg"))
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(good_job(i)) for i in range(3)))
    assert CliRunner().invoke(cli, ["submit", str(good)]).exit_code == 0
    yield tmp_path
    dispose_engines()


def snapshot() -> tuple:
    from workers.app import create_app
    from workers.enqueue import queued_task_count

    settings = Settings.from_env()
    with session_factory(settings.resolved_database_url)() as s:
        rows = tuple(s.execute(select(func.count()).select_from(m)).scalar_one() for m in (Batch, Item, Attempt))
    return rows, queued_task_count(create_app(settings), settings.queue_name)


@SLOW
@given(batch=bad_batches(max_good=3, max_bad=2))
def test_submit_rejects_bad_files_whole_and_stores_nothing(cli_env, batch: BadBatch):
    before = snapshot()
    path = cli_env / "bad.jsonl"
    path.write_bytes(batch.data)
    result = CliRunner().invoke(cli, ["submit", str(path)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {path}: ") and "nothing was stored" in result.output
    for line_no in batch.expected:
        assert f"line {line_no}: " in result.output
    assert "Traceback" not in result.output
    assert snapshot() == before == ((1, 3, 0), 1)
