"""The CLI as a user meets it: help, bad input with clear errors and nothing stored, run/status/export."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from hybridgen.cli import cli
from service.storage.db import dispose_engines, session_factory
from service.storage.models import Batch, Item

GOOD = [
    {"kind": "article", "input": {"topic": "tea"}, "key": "k1"},
    {"kind": "code", "input": {"prompt": "def f(): ..."}},
]


@pytest.fixture
def env(tmp_path, model_cache_dir, monkeypatch):
    (tmp_path / "data").mkdir()  # a data folder must exist: hybridgen refuses a mistyped one
    values = {
        "HYBRIDGEN_DATA_DIR": str(tmp_path / "data"),
        "HYBRIDGEN_CACHE_DIR": str(model_cache_dir),
        "HYBRIDGEN_MODEL": "tiny-llama",
        "HYBRIDGEN_MAX_NEW_TOKENS": "6",
        "HYBRIDGEN_NLI_MODEL": "none",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values
    dispose_engines()


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def db_counts(env) -> tuple[int, int]:
    url = f"sqlite:///{env['HYBRIDGEN_DATA_DIR']}/hybridgen.sqlite"
    with session_factory(url)() as s:
        return (s.execute(select(func.count()).select_from(Batch)).scalar_one(),
                s.execute(select(func.count()).select_from(Item)).scalar_one())


@pytest.mark.parametrize("command", [[], ["db"], ["db", "upgrade"], ["submit"], ["worker"], ["run"], ["status"],
                                     ["export"]])
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output and len(result.output.splitlines()) > 4


def test_run_processes_a_file_and_reports(env, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in GOOD))
    result = invoke("run", str(jobs), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)[0]
    assert summary["total"] == 2 and summary["finished"] == 2
    assert summary["mode"] == "hybrid" and summary["paths"]["hybrid"]["attempts"] == 2  # hybrid by default
    # Running it again resumes: nothing left, nothing duplicated.
    again = invoke("run", str(jobs))
    assert again.exit_code == 0 and "nothing left to process" in again.output
    assert db_counts(env) == (1, 2)

    out = tmp_path / "out" / "r.jsonl"
    out.parent.mkdir()
    exported = invoke("export", str(summary["batch_id"]), "-o", str(out), "--include-flagged")
    assert exported.exit_code == 0
    assert [json.loads(l)["key"] for l in out.read_text().splitlines()] == ["k1", None]
    status = invoke("status", str(summary["batch_id"]))
    assert status.exit_code == 0 and "progress 2/2 (100%)" in status.output


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"kind": "article", "input": {"topic": "tea"}}\n{"kind": "poem"}\n', "line 2: kind: input should be"),
        (b'{"kind": "article", "input": {"topic": "t\xe9"}}\n', "line 1: not valid UTF-8"),
        ("", "no jobs: the input is empty"),
        ('{"kind": "article", "input": {"topic": "a"}, "key": "x"}\n'
         '{"kind": "article", "input": {"topic": "b"}, "key": "x"}', "line 2: key: key 'x' already used on line 1"),
    ],
)
def test_bad_file_is_rejected_whole_with_a_clear_error(env, tmp_path, content, expected):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(GOOD[0]))
    for command in ("submit", "run"):
        result = invoke(command, str(good), str(bad))  # a good file first: it must not be stored either
        assert result.exit_code == 1
        assert expected in result.output and "nothing was stored" in result.output
    invoke("db", "upgrade")
    assert db_counts(env) == (0, 0)


def test_missing_file_and_unknown_batch(env, tmp_path):
    result = invoke("submit", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "no batch with id 42" in invoke("status", "42").output
    assert "no batch with id 42" in invoke("export", "42", "-o", str(tmp_path / "x.jsonl")).output
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_setting_is_reported(env, monkeypatch):
    monkeypatch.setenv("HYBRIDGEN_CHUNK_SIZE", "many")
    result = invoke("status", "1")
    assert result.exit_code == 1 and "HYBRIDGEN_CHUNK_SIZE='many' is not a valid int" in result.output


def test_configured_database_must_be_migrated_explicitly(env, monkeypatch, tmp_path):
    monkeypatch.setenv("HYBRIDGEN_DATABASE_URL", f"sqlite:///{tmp_path / 'prod.sqlite'}")
    result = invoke("status", "1")
    assert result.exit_code == 1 and "run `hybridgen db upgrade` first" in result.output
    assert invoke("db", "upgrade").exit_code == 0
    assert "no batch with id 1" in invoke("status", "1").output
