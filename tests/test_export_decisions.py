"""Export rows carry one final `decision`; the default leaves out unreviewed flagged (and rejected) items
and says how many; `--status` / `?status=` and `--reviewed-only`; a requeued item is never exported with
its old output. Through service.export, the CLI and the HTTP API alike (issue 25, item 6)."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hybridgen.app import create_app
from hybridgen.cli import cli
from pipeline.settings import Settings
from service.export import ExportOptions, ExportSummary, export_records, export_summary
from service.reviews import review_items
from service.storage.db import dispose_engines, session_factory
from service.storage.models import Item, User
from tests.live_server import LiveServer
from tests.review_fixtures import CONTRADICTING, seed_review_data


@pytest.fixture
def seeded(migrated_sqlite):
    yield seed_review_data(migrated_sqlite)
    dispose_engines()


def decide(url, item_id, decision, **kw):
    with session_factory(url).begin() as s:
        out = review_items(s, [item_id], decision, s.execute(select(User)).scalar_one(), **kw)
        assert out.applied == [item_id], out.skipped


def rows(url, batch_id, options=None):
    summary = ExportSummary()
    with session_factory(url)() as s:
        records = {r["item_id"]: r for r in export_records(s, batch_id, options, summary=summary)}
        counted = export_summary(s, batch_id, options)
    assert counted.as_dict() == summary.as_dict(), "the up-front count (API headers) must match the stream"
    return records, summary


def test_default_export_leaves_out_unreviewed_flagged_and_says_so(seeded):
    records, summary = rows(seeded.url, seeded.batch_id)
    assert seeded.flagged_id not in records
    assert summary.left_out == {"unreviewed-flagged": 1} and summary.exported == 2
    assert {r["decision"] for r in records.values()} == {"unreviewed-pass"}
    everything, _ = rows(seeded.url, seeded.batch_id, ExportOptions(include_flagged=True))
    assert everything[seeded.flagged_id]["decision"] == "unreviewed-flagged"
    assert everything[seeded.flagged_id]["gate"] == "flagged"
    # Asking for flagged items by status is asking for them: they are not left out.
    flagged, summary = rows(seeded.url, seeded.batch_id, ExportOptions(statuses=frozenset({"flagged"})))
    assert list(flagged) == [seeded.flagged_id] and summary.left_out == {"status": 2}


def test_each_decision_is_one_field_without_contradicting_status(seeded):
    decide(seeded.url, seeded.flagged_id, "approve")
    decide(seeded.url, seeded.hybrid_done_id, "reject")
    decide(seeded.url, seeded.fallback_done_id, "edit", edited_output="# Tea\n\nBetter.")
    records, summary = rows(seeded.url, seeded.batch_id, ExportOptions(include_rejected=True))
    approved = records[seeded.flagged_id]
    assert approved["decision"] == "approved" and approved["gate"] == "flagged"
    assert "status" not in approved and "review_status" not in approved, \
        "no top-level status: flagged next to an approval"
    assert approved["output"] == CONTRADICTING and approved["review"]["decision"] == "approve"
    assert records[seeded.hybrid_done_id]["decision"] == "rejected"
    assert records[seeded.fallback_done_id]["decision"] == "edited"
    assert records[seeded.fallback_done_id]["output"] == "# Tea\n\nBetter."
    assert summary.decisions == {"approved": 1, "rejected": 1, "edited": 1}
    default, summary = rows(seeded.url, seeded.batch_id)
    assert seeded.hybrid_done_id not in default and summary.left_out == {"rejected": 1}


def test_requeued_item_is_exported_pending_without_its_old_output(seeded):
    decide(seeded.url, seeded.fallback_done_id, "requeue")
    records, summary = rows(seeded.url, seeded.batch_id)
    pending = records[seeded.fallback_done_id]
    assert pending["decision"] == "pending" and pending["gate"] is None
    assert pending["output"] is None and pending["reports"] == [] and pending["final_path"] is None
    assert summary.pending == 1
    with session_factory(seeded.url)() as s:  # the stale output is still in the row, just not exported
        assert s.get(Item, seeded.fallback_done_id).output


def test_reviewed_only(seeded):
    decide(seeded.url, seeded.flagged_id, "approve")
    decide(seeded.url, seeded.hybrid_done_id, "reject")
    records, summary = rows(seeded.url, seeded.batch_id, ExportOptions(reviewed_only=True))
    assert list(records) == [seeded.flagged_id]
    assert summary.left_out == {"not-reviewed": 1, "rejected": 1}
    records, _ = rows(seeded.url, seeded.batch_id, ExportOptions(reviewed_only=True, include_rejected=True))
    assert sorted(records) == sorted([seeded.flagged_id, seeded.hybrid_done_id])


def test_bad_status_is_refused_by_name():
    with pytest.raises(ValueError, match="status: 'finished' is no item status"):
        ExportOptions(statuses=frozenset({"finished"}))


# -- the CLI -------------------------------------------------------------------------------------------
def cli_export(seeded, tmp_path, monkeypatch, *args):
    (tmp_path / "data").mkdir(exist_ok=True)
    monkeypatch.setenv("HYBRIDGEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HYBRIDGEN_DATABASE_URL", seeded.url)
    result = CliRunner().invoke(cli, ["export", str(seeded.batch_id), "-o", "-", *args], catch_exceptions=False)
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def test_cli_export_reports_what_it_left_out(seeded, tmp_path, monkeypatch):
    decide(seeded.url, seeded.hybrid_done_id, "reject")
    decide(seeded.url, seeded.fallback_done_id, "requeue")
    result, records = cli_export(seeded, tmp_path, monkeypatch)
    assert result.exit_code == 0
    assert [r["decision"] for r in records] == ["pending"]
    assert ("wrote 1 item of batch 1 to standard output; left out 1 rejected item (--include-rejected), "
            "1 unreviewed flagged item (--include-flagged); 1 item pending") in result.stderr
    result, records = cli_export(seeded, tmp_path, monkeypatch, "--include-flagged", "--include-rejected")
    assert sorted(r["decision"] for r in records) == ["pending", "rejected", "unreviewed-flagged"]
    assert "left out" not in result.stderr


def test_cli_export_status_and_reviewed_only(seeded, tmp_path, monkeypatch):
    decide(seeded.url, seeded.flagged_id, "approve")
    result, records = cli_export(seeded, tmp_path, monkeypatch, "--status", "flagged,done", "--reviewed-only")
    assert [r["item_id"] for r in records] == [seeded.flagged_id] and records[0]["decision"] == "approved"
    assert "2 items nobody reviewed (--reviewed-only)" in result.stderr
    result, records = cli_export(seeded, tmp_path, monkeypatch, "--status", "done")
    assert sorted(r["item_id"] for r in records) == sorted([seeded.hybrid_done_id, seeded.fallback_done_id])
    refused = CliRunner().invoke(cli, ["export", "1", "-o", "-", "--status", "finished"])
    assert refused.exit_code == 2 and "'finished' is no item status" in refused.output
    assert refused.stdout.count("{") == 0


# -- the HTTP API --------------------------------------------------------------------------------------
@pytest.fixture
def api(seeded, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=seeded.url)
    with LiveServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {seeded.token}"},
                          timeout=30) as client:
            client.seed = seeded
            yield client


def test_api_export_decisions_headers_and_filters(api):
    seed = api.seed
    decide(seed.url, seed.flagged_id, "approve")
    decide(seed.url, seed.fallback_done_id, "requeue")
    r = api.get(f"/api/batches/{seed.batch_id}/export")
    assert r.status_code == 200
    records = {json.loads(line)["item_id"]: json.loads(line) for line in r.text.splitlines()}
    assert records[seed.flagged_id]["decision"] == "approved" and "status" not in records[seed.flagged_id]
    assert records[seed.fallback_done_id]["decision"] == "pending" and records[seed.fallback_done_id]["output"] is None
    assert r.headers["x-hybridgen-exported"] == "3" and r.headers["x-hybridgen-pending"] == "1"
    assert r.headers["x-hybridgen-left-out"] == "0"

    reviewed = api.get(f"/api/batches/{seed.batch_id}/export", params={"reviewed_only": "true"})
    assert [json.loads(line)["item_id"] for line in reviewed.text.splitlines()] == [seed.flagged_id]
    assert reviewed.headers["x-hybridgen-left-out-by"] == "not-reviewed=2"
    done = api.get(f"/api/batches/{seed.batch_id}/export", params={"status": "done"})
    assert [json.loads(line)["item_id"] for line in done.text.splitlines()] == [seed.hybrid_done_id]
    assert done.headers["x-hybridgen-left-out-by"] == "status=2"
    bad = api.get(f"/api/batches/{seed.batch_id}/export", params={"status": "done,finished"})
    assert bad.status_code == 422 and "status: 'finished' is no item status" in bad.json()["detail"]


def test_api_default_export_leaves_out_unreviewed_flagged(api):
    r = api.get(f"/api/batches/{api.seed.batch_id}/export")
    ids = [json.loads(line)["item_id"] for line in r.text.splitlines()]
    assert api.seed.flagged_id not in ids and len(ids) == 2
    assert r.headers["x-hybridgen-left-out"] == "1"
    assert r.headers["x-hybridgen-left-out-by"] == "unreviewed-flagged=1"
    everything = api.get(f"/api/batches/{api.seed.batch_id}/export", params={"include_flagged": "true"})
    assert len(everything.text.splitlines()) == 3
    item = api.get(f"/api/items/{api.seed.flagged_id}").json()  # the item view keeps its state, and says it
    assert item["status"] == "flagged" and item["decision"] == "unreviewed-flagged"


# -- the batch page ------------------------------------------------------------------------------------
def test_batch_page_lists_items_review_progress_and_exports_behind_the_login(api, tmp_path):
    from tests.review_fixtures import ADMIN, ADMIN_PASSWORD

    seed = api.seed
    decide(seed.url, seed.hybrid_done_id, "approve")
    with session_factory(seed.url).begin() as s:  # untrusted input reaches the page escaped
        s.get(Item, seed.fallback_done_id).output = "# <script>alert(1)</script>\n\nText."
    anonymous = httpx.get(api.base_url.join(f"/admin/batch/jsonl/{seed.batch_id}"), follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/admin/login" in anonymous.headers["location"]
    with httpx.Client(base_url=api.base_url, timeout=30, follow_redirects=True) as browser:
        assert browser.post("/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 200
        page = browser.get(f"/admin/batch/details/{seed.batch_id}").text
        for item_id in (seed.flagged_id, seed.hybrid_done_id, seed.fallback_done_id):
            assert f"/admin/item/details/{item_id}" in page
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
        assert "approved: 1" in page and "not reviewed: 2" in page and "rejected: 0" in page
        assert f"/admin/item/list?batch={seed.batch_id}&amp;review=none" in page
        assert f"/admin/item/list?batch={seed.batch_id}&amp;status=flagged" in page
        assert "1 unreviewed-flagged" in page, "the page says what the default export leaves out"
        listed = browser.get(f"/admin/item/list?batch={seed.batch_id}&review=none").text
        assert f"/admin/item/details/{seed.flagged_id}" in listed and f"/admin/item/details/{seed.hybrid_done_id}" not in listed
        download = browser.get(f"/admin/batch/jsonl/{seed.batch_id}")
        assert download.status_code == 200 and "attachment" in download.headers["content-disposition"], download.text[:300]
        assert [json.loads(line)["decision"] for line in download.text.splitlines()] == ["approved", "unreviewed-pass"]
        assert download.headers["x-hybridgen-left-out"] == "1"
        flagged = browser.get(f"/admin/batch/jsonl/{seed.batch_id}", params={"include_flagged": "1"})
        assert len(flagged.text.splitlines()) == 3
        assert browser.get("/admin/batch/jsonl/424242").status_code == 404
