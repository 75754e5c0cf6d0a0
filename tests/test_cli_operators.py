"""The CLI for operators (issue 26): settings checked before anything is stored, batches and failures
visible (`batches`, `items`, `requeue`, `status`), progress when output is not a terminal,
resubmissions that say what they resume, and `bench` on a tiny model."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from rich.console import Console
from sqlalchemy import func, select

from hybridgen.cli import cli
from hybridgen.commands.bench import bench_table, parse_modes
from hybridgen.progress import ItemProgress
from service.modes import MODES
from service.spec import parse_jsonl
from service.storage.db import session_factory
from service.storage.models import Attempt, Batch, Item, ItemStatus, Review
from service.storage.queries import AttemptRecord, claim_items, finish_item
from service.storage.types import utcnow
from service.submission import submit_batch
from tests.test_cli import env, invoke  # noqa: F401 - env: the CLI's tiny-model environment (a fixture)

JOBS = [
    {"kind": "article", "input": {"topic": "tea"}, "key": "tea"},
    {"kind": "code", "input": {"prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\""}},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"material": "steel"}}},
]


def jobs_file(tmp_path, jobs=JOBS, name="jobs.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(j) for j in jobs) + "\n")
    return path


def main_db(env) -> str:
    return f"sqlite:///{env['HYBRIDGEN_DATA_DIR']}/hybridgen.sqlite"


def row_counts(url: str) -> tuple[int, int, int]:
    with session_factory(url)() as s:
        return tuple(s.execute(select(func.count()).select_from(m)).scalar_one() for m in (Batch, Item, Attempt))


# -- settings: every bad value refused before anything is stored or loaded ------------------------------
BAD_SETTINGS = [
    ({"HYBRIDGEN_DEVICE": "gpu"}, "HYBRIDGEN_DEVICE='gpu'; expected auto, cpu, cuda or cuda:N"),
    ({"HYBRIDGEN_DTYPE": "int8"}, "HYBRIDGEN_DTYPE='int8'; expected one of auto, float32, bfloat16, float16"),
    ({"HYBRIDGEN_VALIDATORS_DISABLED": "contradictoin"},
     "names 'contradictoin', which is no validator; did you mean contradiction?"),
    ({"HYBRIDGEN_REFINER_OVERRIDES": "code:drafts=40"},
     "HYBRIDGEN_REFINER_OVERRIDES: code drafts=40 must be an integer from 0 (the threshold decoder) to 16"),
    ({"HYBRIDGEN_REFINER_OVERRIDES": "poem:block=4"}, "HYBRIDGEN_REFINER_OVERRIDES: 'poem:block=4' should look like"),
    ({"HYBRIDGEN_CHUNK_SIZE": "0"}, "HYBRIDGEN_CHUNK_SIZE=0 must be from 1 to 10000"),
    ({"HYBRIDGEN_CHUNK_SIZE": "-5"}, "HYBRIDGEN_CHUNK_SIZE=-5 must be from 1 to 10000"),
    ({"HYBRIDGEN_TEMPERATURE": "70"}, "HYBRIDGEN_TEMPERATURE=70.0 must be from 0.0 to 5.0"),
    ({"HYBRIDGEN_RETRY_TEMPERATURE": "9"}, "HYBRIDGEN_RETRY_TEMPERATURE=9.0 must be above 0.0 and at most 5.0"),
    ({"HYBRIDGEN_TOP_P": "0"}, "HYBRIDGEN_TOP_P=0.0 must be above 0.0 and at most 1.0"),
    ({"HYBRIDGEN_LOG_LEVEL": "loud"}, "HYBRIDGEN_LOG_LEVEL='loud'; expected one of DEBUG, INFO"),
    ({"HYBRIDGEN_DATABSE_URL": "postgresql+psycopg://db/x"},
     "unknown setting HYBRIDGEN_DATABSE_URL; did you mean HYBRIDGEN_DATABASE_URL?"),
    ({"HYBRIDGEN_REFINER_ADAPTER": "/no/such/adapter"},
     "HYBRIDGEN_REFINER_ADAPTER='/no/such/adapter': no such folder; expected default or none"),
    ({"HYBRIDGEN_NLI_MODEL": "./no-nli"}, "HYBRIDGEN_NLI_MODEL='./no-nli': no such folder"),
    ({"HYBRIDGEN_MODEL": "./no-model"}, "HYBRIDGEN_MODEL='./no-model': no such folder"),
]


@pytest.mark.parametrize("settings, message", BAD_SETTINGS, ids=[next(iter(s)) + "=" + next(iter(s.values()))
                                                               for s, _ in BAD_SETTINGS])
def test_a_bad_setting_is_refused_by_name_before_anything_is_stored(env, tmp_path, monkeypatch, settings, message):
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    jobs = jobs_file(tmp_path)
    for command in (["run", str(jobs)], ["submit", str(jobs)], ["bench", str(jobs)], ["status", "1"]):
        result = invoke(*command)
        assert result.exit_code == 1, (command, result.output)
        assert message in result.output, (command, result.output)
        assert "Traceback" not in result.output
    # nothing stored, not even an empty database created
    assert list((tmp_path / "data").iterdir()) == []


def test_a_cuda_device_on_a_machine_without_one_is_refused_before_storing(env, tmp_path, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    monkeypatch.setenv("HYBRIDGEN_DEVICE", "cuda")
    result = invoke("run", str(jobs_file(tmp_path)))
    assert result.exit_code == 1 and "HYBRIDGEN_DEVICE='cuda', but torch sees no CUDA device" in result.output
    assert list((tmp_path / "data").iterdir()) == []


def test_a_data_folder_that_does_not_exist_is_refused_unless_init(env, tmp_path, monkeypatch):
    missing = tmp_path / "typo" / "data"
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(missing))
    for command in (["status", "1"], ["submit", str(jobs_file(tmp_path))], ["batches"]):
        result = invoke(*command)
        assert result.exit_code == 1 and f"HYBRIDGEN_DATA_DIR='{missing}' does not exist" in result.output
        assert "--init" in result.output
    assert not missing.exists()
    created = invoke("--init", "db", "upgrade")
    assert created.exit_code == 0, created.output
    assert (missing / "hybridgen.sqlite").exists()
    assert "no batch with id 1" in invoke("status", "1").output  # exists now: no --init needed


def test_a_run_whose_items_end_in_error_exits_non_zero(env, tmp_path, monkeypatch):
    not_an_adapter = tmp_path / "empty-adapter"
    not_an_adapter.mkdir()
    monkeypatch.setenv("HYBRIDGEN_REFINER_ADAPTER", str(not_an_adapter))  # exists, but loading it fails
    result = invoke("run", str(jobs_file(tmp_path, JOBS[1:2])))
    assert result.exit_code == 1, result.output
    assert "1 item ended in error: hybridgen items 1 --status error" in result.output
    assert "(retry: hybridgen requeue 1 --status error)" in result.output


# -- progress when output is not a terminal ----------------------------------------------------------------
def test_progress_lines_when_output_is_not_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with ItemProgress(console, 3, interval_s=0, label="batch 7") as progress:
        for _ in range(3):
            progress.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "batch 7: 0/3 items (0%), rate and ETA after the first item, 0:00:00 elapsed"
    assert [line.split(",")[0] for line in lines[1:]] == ["batch 7: 1/3 items (33%)", "batch 7: 2/3 items (67%)",
                                                         "batch 7: 3/3 items (100%)"]
    assert all(" items/hour, ETA " in line for line in lines[1:]) and lines[-1].endswith(" elapsed")
    assert "ETA 0:00:00" in lines[-1]


def test_progress_counts_generations_between_items():
    out = io.StringIO()
    with ItemProgress(Console(file=out, force_terminal=False, width=200), 2, interval_s=3600, label="batch 2") as progress:
        progress.rows_finished(3)
        progress.rows_finished(2)
        assert progress.status_line().startswith("batch 2: 0/2 items (0%)")
        assert progress.status_line().endswith(" elapsed, 5 generations")
        progress.advance(2)
    assert out.getvalue().splitlines()[-1].endswith(", 5 generations")


def test_progress_lines_on_a_timer_and_quiet():
    out = io.StringIO()
    with ItemProgress(Console(file=out, width=200), 2, interval_s=3600) as progress:
        progress.advance(2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("items: 0/2 items") and lines[1].startswith("items: 2/2 items (100%)")
    quiet = io.StringIO()
    with ItemProgress(Console(file=quiet, width=200), 2, interval_s=0, quiet=True) as progress:
        progress.advance(2)
    assert quiet.getvalue() == ""


def test_run_prints_a_progress_line_per_item_and_a_summary_with_failures(env, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDGEN_PROGRESS_INTERVAL_S", "0")
    monkeypatch.setenv("HYBRIDGEN_CHUNK_SIZE", "2")
    jobs = jobs_file(tmp_path, JOBS[:2])
    result = invoke("run", "--mode", "ar", str(jobs))
    assert result.exit_code == 0, result.output
    for line in ("batch 1: 0/2 items (0%)", "batch 1: 1/2 items (50%)", "batch 1: 2/2 items (100%)"):
        assert line in result.output
    assert "attempts by path" in result.output
    with session_factory(main_db(env))() as s:
        flagged = s.execute(select(Item.failed_validators).where(Item.status == "flagged")).scalars().all()
    for names in flagged:  # each failing validator named, with the command that lists its items
        for name in filter(None, names.split(",")):
            assert f"failed {name}: hybridgen items 1 --status flagged --validator {name}" in result.output
    quiet = invoke("run", "--quiet", str(jobs_file(tmp_path, JOBS[2:], name="more.jsonl")))
    assert quiet.exit_code == 0 and "items (" not in quiet.output and "processed 1 item in" in quiet.output


# -- batches, items, requeue (SQLite and PostgreSQL) -------------------------------------------------------
def finished_batch(url: str, outcomes: list[tuple[str, list[str]]]) -> tuple[int, list[int]]:
    """A batch whose items ended as given ((status, failing validators) each), through the real queries."""
    sessions = session_factory(url)
    parsed = parse_jsonl("\n".join(json.dumps({"kind": "article", "input": {"topic": f"topic {i}"}})
                                   for i in range(len(outcomes))))
    stored = submit_batch(sessions, parsed, name="ops.jsonl", mode="ar", model="tiny-llama")
    with sessions.begin() as s:
        claims = claim_items(s, stored.new_item_ids, "test-worker", utcnow())
    for claim, (status, failing) in zip(claims, outcomes):
        reports = [{"validator": "plan", "passed": True, "message": "ok"}] + [
            {"validator": v, "passed": False, "message": f"{v} found a problem"} for v in failing]
        attempts = [] if status == "error" else [AttemptRecord(path="ar", passed=not failing, output="text",
                                                               reports=reports)]
        with sessions.begin() as s:
            assert finish_item(s, claim, "test-worker", status=ItemStatus(status), attempts=attempts,
                               output=None if status == "error" else "text",
                               final_path=None if status == "error" else "ar",
                               error="RuntimeError: boom\nTraceback ..." if status == "error" else None)
    return stored.batch_id, stored.new_item_ids


@pytest.fixture
def ops_env(env, db_url, monkeypatch):
    monkeypatch.setenv("HYBRIDGEN_DATABASE_URL", db_url)
    return db_url


def test_batches_lists_counts_progress_and_age(ops_env):
    batch_id, _ = finished_batch(ops_env, [("done", []), ("flagged", ["degeneration"]), ("error", [])])
    result = invoke("batches", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["batch_id"] == batch_id and row["total"] == 3 and row["finished"] == 3 and row["progress"] == 1.0
    assert row["counts"] == {"queued": 0, "running": 0, "done": 1, "flagged": 1, "error": 1}
    assert row["age_s"] >= 0 and row["mode"] == "ar"
    table = invoke("batches")
    assert table.exit_code == 0 and "ops.jsonl" in table.output and "age" in table.output


def test_items_lists_failures_with_their_first_message(ops_env):
    batch_id, ids = finished_batch(ops_env, [("done", []), ("flagged", ["degeneration", "contradiction"]),
                                             ("flagged", ["markdown_structure"]), ("error", [])])
    flagged = json.loads(invoke("items", str(batch_id), "--status", "flagged", "--json").output)
    assert [(r["item_id"], r["message"]) for r in flagged] == [
        (ids[1], "degeneration: degeneration found a problem"),
        (ids[2], "markdown_structure: markdown_structure found a problem")]
    by_validator = json.loads(invoke("items", str(batch_id), "--status", "flagged", "--validator", "contradiction",
                                     "--json").output)
    assert [(r["item_id"], r["message"]) for r in by_validator] == [(ids[1], "contradiction: contradiction found a problem")]
    errors = json.loads(invoke("items", str(batch_id), "--status", "error", "--json").output)
    assert [(r["item_id"], r["message"]) for r in errors] == [(ids[3], "RuntimeError: boom")]
    typo = invoke("items", str(batch_id), "--validator", "contradictoin")
    assert typo.exit_code == 2 and "did you mean contradiction?" in typo.output
    assert "no batch with id 999" in invoke("items", "999").output


def test_requeue_by_status_and_by_item_is_recorded_as_reviews(ops_env):
    batch_id, ids = finished_batch(ops_env, [("done", []), ("flagged", ["degeneration"]), ("error", []),
                                             ("error", [])])
    by_status = invoke("requeue", str(batch_id), "--status", "error", "--reviewer", "ops", "--note", "model fixed")
    assert by_status.exit_code == 0, by_status.output
    assert "requeued 2 items (stored as reviews by ops)" in by_status.output
    by_item = invoke("requeue", str(ids[1]), str(ids[2]))
    assert by_item.exit_code == 0, by_item.output
    assert f"item {ids[2]} skipped: item is queued" in by_item.output and "requeued 1 item " in by_item.output
    with session_factory(ops_env)() as s:
        statuses = dict(s.execute(select(Item.id, Item.status).where(Item.batch_id == batch_id)).all())
        reviews = s.execute(select(Review.item_id, Review.decision, Review.reviewer_name, Review.note)
                            .order_by(Review.id)).all()
    assert statuses == {ids[0]: "done", ids[1]: "queued", ids[2]: "queued", ids[3]: "queued"}
    assert [tuple(r) for r in reviews[:2]] == [(ids[2], "requeue", "ops", "model fixed"),
                                               (ids[3], "requeue", "ops", "model fixed")]
    assert reviews[2].item_id == ids[1] and reviews[2].reviewer_name.startswith("cli:")
    status = json.loads(invoke("status", str(batch_id), "--json").output)
    assert status["counts"]["queued"] == 3 and status["reviews"]["requeued"] == 3
    assert status["quality_alerts"] is None  # no quality metrics exist yet: not computed, not "none fired"
    nothing = invoke("requeue", str(batch_id), "--status", "flagged")
    assert nothing.exit_code == 1 and "nothing requeued: no item matches" in nothing.output
    assert invoke("requeue", "1", "2", "--status", "error").exit_code == 2


def test_status_shows_states_apart_timing_rates_reviews_and_failures(ops_env):
    batch_id, _ = finished_batch(ops_env, [("done", []), ("flagged", ["degeneration"]), ("flagged", ["degeneration"])])
    result = invoke("status", str(batch_id))
    assert result.exit_code == 0, result.output
    for text in ("queued", "running", "progress 3/3 (100%); elapsed ", "items/hour, ETA 0:00:00",
                 "pass rate 33% of finished", "reviews: 0 approved, 0 rejected, 0 edited, 0 requeued; "
                 "2 flagged not reviewed yet",
                 f"2 items failed degeneration: hybridgen items {batch_id} --status flagged --validator degeneration",
                 "quality alerts: not computed"):
        assert text in result.output, text


# -- resubmission, export, input formats, headers -----------------------------------------------------------
def test_resubmitting_in_another_mode_is_refused_unless_new_batch(env, tmp_path):
    jobs = jobs_file(tmp_path)
    assert invoke("submit", "--mode", "ar", str(jobs)).exit_code == 0
    before = row_counts(main_db(env))
    again = invoke("submit", "--mode", "hybrid", str(jobs))
    assert again.exit_code == 1
    assert "stored already as batch 1, with mode ar (asked: hybrid)" in again.output and "--new-batch" in again.output
    assert row_counts(main_db(env)) == before
    same = invoke("submit", "--mode", "ar", str(jobs))
    assert same.exit_code == 0 and "already submitted: nothing new stored" in same.output
    copy = invoke("submit", "--mode", "hybrid", "--new-batch", str(jobs), "--json")
    assert copy.exit_code == 0, copy.output
    [result] = json.loads(copy.stdout)
    assert result["batch_id"] == 2 and result["new_items"] == 3
    resumed = invoke("submit", "--mode", "hybrid", str(jobs), "--json")  # the copy for this mode is found
    assert json.loads(resumed.stdout)[0]["batch_id"] == 2
    exported = [json.loads(line) for line in invoke("export", "2", "-o", "-").stdout.splitlines()]
    assert [r["key"] for r in exported] == ["tea", None, None]  # the key stays with its first item, and is shown


def test_resubmitting_with_another_model_is_refused(env, tmp_path, monkeypatch):
    jobs = jobs_file(tmp_path)
    assert invoke("submit", str(jobs)).exit_code == 0
    monkeypatch.setenv("HYBRIDGEN_MODEL", "tiny-qwen2")
    refused = invoke("submit", str(jobs))
    assert refused.exit_code == 1 and "model tiny-llama (asked: tiny-qwen2)" in refused.output


def test_jobs_stored_earlier_are_reported_and_exported_marked(env, tmp_path):
    assert invoke("submit", str(jobs_file(tmp_path))).exit_code == 0
    more = jobs_file(tmp_path, [JOBS[0], {"kind": "article", "input": {"topic": "coffee"}, "key": "coffee"}],
                     name="more.jsonl")
    result = invoke("submit", str(more))
    assert result.exit_code == 0
    assert "1 job already stored under its key, not generated again: line 1 ('tea': item 1 of batch 1" in result.output
    records = [json.loads(line) for line in invoke("export", "2", "-o", "-").stdout.splitlines()]
    assert [(r["key"], r["batch_id"], r["line"], r["stored_earlier"]) for r in records] == [
        ("coffee", 2, 2, False), ("tea", 1, 1, True)]
    assert json.loads(invoke("status", "2", "--json").output)["stored_earlier"] == 1


def test_export_to_stdout_and_json_array_files(env, tmp_path):
    array = tmp_path / "jobs.json"
    array.write_text(json.dumps(JOBS))
    submitted = invoke("submit", str(array))
    assert submitted.exit_code == 0, submitted.output
    assert "3 new items" in submitted.output and "1 task queued" in submitted.output
    result = CliRunner().invoke(cli, ["export", "1", "-o", "-"], catch_exceptions=False)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["article", "code", "product"]
    assert "wrote 3 items of batch 1 to standard output" in result.stderr
    assert not (tmp_path / "-").exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([JOBS[0], {"kind": "article"}]))
    refused = invoke("submit", str(bad))
    assert refused.exit_code == 1 and "1 problem, nothing was stored" in refused.output


def test_users_and_tokens_lists_have_a_header_row(env):
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "create", "alice", "--password-stdin"], input="a good password\n").exit_code == 0
    assert runner.invoke(cli, ["tokens", "create", "--user", "alice", "--name", "crm"]).exit_code == 0
    users = invoke("users", "list").stdout.splitlines()
    assert users[0] == "id\tusername\tstatus\tcreated" and users[1].startswith("1\talice\tactive\t")
    tokens = invoke("tokens", "list").stdout.splitlines()
    assert tokens[0] == "id\tuser\tname\tprefix\tcreated\tlast used\tstatus" and "\tcrm\t" in tokens[1]


# -- bench ---------------------------------------------------------------------------------------------------
def test_bench_modes_come_from_the_pipeline():
    assert parse_modes(None, None, None) == list(MODES)  # all known modes by default, plain included
    assert parse_modes(None, None, "ar, hybrid,ar") == ["ar", "hybrid"]
    with pytest.raises(Exception, match="expected a comma-separated list of"):
        parse_modes(None, None, "ar,fast")


def test_bench_on_a_tiny_model_leaves_the_main_database_alone(env, tmp_path):
    assert invoke("submit", str(jobs_file(tmp_path))).exit_code == 0  # the user's own batch
    before = row_counts(main_db(env))
    result = invoke("bench", str(jobs_file(tmp_path)), "--sample", "2", "--modes", "ar,hybrid", "--no-warmup",
                    "--json", "--quiet")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()  # one JSON line
    report = json.loads(line)
    assert report["sample"] == 2 and list(report["modes"]) == ["ar", "hybrid"]
    assert report["recommended"] in ("ar", "hybrid") and report["why"]
    for metrics in report["modes"].values():
        assert metrics["items"] == 2 and set(metrics["pass_rate_by_kind"]) == {"article", "code"}
        assert metrics["items_per_hour"] > 0 and metrics["tokens_per_1000_items"] > 0
        assert metrics["seconds_per_1000_items"] > 0 and metrics["tokens_per_forward"] > 0
        assert "plan" in metrics["stage_seconds"] and metrics["errors"] == 0
    assert "refiner" in report["modes"]["hybrid"]["stage_seconds"]
    assert "ar" in report["modes"]["ar"]["attempts_by_path"]
    assert row_counts(main_db(env)) == before  # nothing it ran was stored in the main database
    out = io.StringIO()
    Console(file=out, width=200).print(bench_table(report))
    table = out.getvalue()
    for row in ("items per hour", "validated items per hour", "pass rate article", "tokens per forward",
                "seconds in plan", "tokens per 1000 items", "seconds per 1000 items"):
        assert row in table, row
    assert f"{report['recommended']} *" in table


def test_bench_keep_stores_the_measured_batches_in_the_main_database(env, tmp_path):
    result = invoke("bench", str(jobs_file(tmp_path)), "--sample", "1", "--modes", "ar", "--no-warmup", "--keep",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert "kept as batches 1 (see `hybridgen status BATCH`)" in result.output
    assert "ar is the only mode measured" in result.output
    with session_factory(main_db(env))() as s:
        [batch] = s.execute(select(Batch)).scalars().all()
    assert batch.mode == "ar" and batch.params["bench"] is True and batch.item_count == 1
