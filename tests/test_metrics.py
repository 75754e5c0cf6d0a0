"""Quality metrics over time (issue 25, item 8): the rates by day, kind, model and mode, computed in SQL
(service/metrics.py) on SQLite and PostgreSQL; the alert thresholds (HYBRIDGEN_ALERT_THRESHOLDS); the
alerts in `hybridgen status` and GET /api/metrics; the SVG charts' escaping.

The seeded items are stored as rows with chosen days and claim times (the rates depend on them), the
way the workers leave them: attempts keyed by run, a final status, review fields, feedback labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from hybridgen.admin.charts import Guide, Series, line_chart
from hybridgen.admin.services import AppServices
from hybridgen.app import create_app
from pipeline.settings import Settings, SettingsError, parse_alert_thresholds
from service.accounts import create_token, create_user
from service.metrics import METRICS, Threshold, batch_alerts, daily_metrics, find_alerts, metrics_report
from service.storage.db import session_factory
from service.storage.models import Attempt, Batch, Feedback, Item
from tests.test_cli import env, invoke  # noqa: F401 - env: the CLI's environment (a fixture)

DAY1, DAY2 = date(2026, 12, 3), date(2026, 12, 4)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


@dataclass
class Seeded:
    hybrid_batch: int
    ar_batch: int
    other_batch: int


def add_item(s, batch: Batch, kind: str, status: str, *, claimed: datetime | None, finished: datetime | None,
             runs: list[list[tuple[str, bool, int, int]]] = (), review: str | None = None,
             model: str = "model-a") -> Item:
    """An item whose runs made the given attempts ((path, passed, tokens, forwards) each), the last run
    being the current one."""
    item = Item(batch_id=batch.id, line_no=len(batch.items) + 1, kind=kind, input={"topic": "x"}, status=status,
                run_count=max(len(runs), 1 if claimed else 0), started_at=claimed, finished_at=finished,
                review_status=review, output=None if status == "error" else "text")
    batch.items.append(item)
    s.flush()
    for run_no, attempts in enumerate(runs, start=1):
        for path, passed, tokens, forwards in attempts:
            key = "ar" if path == "ar" else "planner"
            s.add(Attempt(item_id=item.id, run_no=run_no, path=path, models={key: model}, passed=passed,
                          generated_tokens=tokens, forward_passes=forwards,
                          tokens_per_forward=tokens / forwards if forwards else 0.0))
    s.flush()
    return item


def false_flag(s, item: Item, when: datetime) -> None:
    s.add(Feedback(item_id=item.id, label="false_flag", validator="contradiction", labeller_name="alice",
                   created_at=when))


FAIL_BOTH = [("hybrid", False, 20, 10), ("ar_fallback", False, 20, 20)]


def seed_metrics(url: str, day1: date = DAY1, day2: date = DAY2) -> Seeded:
    """Two days, two kinds, two modes, with these known rates (all model-a, hybrid mode unless said):

    day1 article: 4 items; first pass 1/4, final pass 2/4, fallback 3/4, flagged 2/4, approval 1/2 (approved,
      rejected), false flag 1/2, tokens 150 / forwards 100, one chunk of 30 min -> 8 items/hour.
    day1 product: 2 items (one an error without attempts: its model comes from the batch's params); first
      pass 1/2, final 1/2, no fallback or flag, tokens 10 / 5, one chunk of 15 min -> 8 items/hour.
    day2 article: 3 items (one re-run after a failed first run: only its latest run counts; one flagged
      with a false-flag label older than its run, which does not count); first pass 2/3, final 2/3,
      fallback 1/3, flagged 1/3, approval 2/2 (approved, edited), false flag 0/1, tokens 44 / 32,
      chunks of 30 and 15 min -> 4 items/hour.
    day2 article in an ar batch of model-b: 1 item, passed first; tokens 8 / 8; 6 min -> 10 items/hour.
    Not counted: a queued item, a running one, one that finished the day before day1.
    """
    sessions = session_factory(url)
    with sessions.begin() as s:
        hybrid = Batch(name="hybrid.jsonl", mode="hybrid", params={"model": "model-a"})
        ar = Batch(name="ar.jsonl", mode="ar", params={})
        other = Batch(name="other.jsonl", mode="hybrid", params={"model": "model-a"})
        s.add_all([hybrid, ar, other])
        s.flush()
        c1 = at(day1, 10)
        add_item(s, hybrid, "article", "done", claimed=c1, finished=at(day1, 10, 10), runs=[[("hybrid", True, 30, 10)]])
        add_item(s, hybrid, "article", "done", claimed=c1, finished=at(day1, 10, 20),
                 runs=[[("hybrid", False, 20, 10), ("ar_fallback", True, 20, 20)]])
        a3 = add_item(s, hybrid, "article", "flagged", claimed=c1, finished=at(day1, 10, 30), runs=[FAIL_BOTH],
                      review="rejected")
        false_flag(s, a3, at(day1, 11))
        false_flag(s, a3, at(day1, 11, 5))  # a second label on the same item: still one false-flagged item
        add_item(s, hybrid, "article", "flagged", claimed=c1, finished=at(day1, 10, 25), runs=[FAIL_BOTH],
                 review="approved")
        add_item(s, hybrid, "product", "done", claimed=at(day1, 9), finished=at(day1, 9, 15),
                 runs=[[("hybrid", True, 10, 5)]])
        add_item(s, hybrid, "product", "error", claimed=at(day1, 9), finished=at(day1, 9, 5))

        add_item(s, other, "article", "done", claimed=at(day2, 8), finished=at(day2, 8, 30),
                 runs=[FAIL_BOTH, [("hybrid", True, 12, 6)]])
        add_item(s, other, "article", "done", claimed=at(day2, 8), finished=at(day2, 8, 20),
                 runs=[[("hybrid", True, 12, 6)]], review="approved")
        b3 = add_item(s, other, "article", "flagged", claimed=at(day2, 12), finished=at(day2, 12, 15),
                      runs=[[("hybrid", False, 10, 10), ("ar_fallback", False, 10, 10)]], review="edited")
        false_flag(s, b3, at(day2, 11))  # before this run was claimed: about an older output

        add_item(s, ar, "article", "done", claimed=at(day2, 7), finished=at(day2, 7, 6),
                 runs=[[("ar", True, 8, 8)]], model="model-b")

        add_item(s, other, "article", "queued", claimed=None, finished=None)
        add_item(s, other, "article", "running", claimed=at(day2, 13), finished=None)
        add_item(s, other, "product", "flagged", claimed=at(day1 - timedelta(days=1), 23),
                 finished=at(day1 - timedelta(days=1), 23, 30), runs=[FAIL_BOTH])
    return Seeded(hybrid.id, ar.id, other.id)


def rows_by_key(url: str):
    with session_factory(url)() as s:
        return {(r.day, r.kind, r.model, r.mode): r for r in daily_metrics(s, DAY1, DAY2 + timedelta(days=1))}


# -- the metrics -------------------------------------------------------------------------------------------
def test_rates_by_day_kind_model_and_mode_are_exact(db_url):
    seed_metrics(db_url)
    rows = rows_by_key(db_url)
    d1, d2 = DAY1.isoformat(), DAY2.isoformat()
    assert sorted(rows) == [(d1, "article", "model-a", "hybrid"), (d1, "product", "model-a", "hybrid"),
                            (d2, "article", "model-a", "hybrid"), (d2, "article", "model-b", "ar")]
    expected = {
        (d1, "article", "model-a", "hybrid"): dict(
            items=4, first_pass_rate=0.25, final_pass_rate=0.5, fallback_rate=0.75, flag_rate=0.5,
            approval_rate=0.5, false_flag_rate=0.5, tokens_per_forward=1.5, items_per_hour=8.0),
        (d1, "product", "model-a", "hybrid"): dict(
            items=2, first_pass_rate=0.5, final_pass_rate=0.5, fallback_rate=0.0, flag_rate=0.0,
            approval_rate=None, false_flag_rate=None, tokens_per_forward=2.0, items_per_hour=8.0),
        (d2, "article", "model-a", "hybrid"): dict(
            items=3, first_pass_rate=0.6667, final_pass_rate=0.6667, fallback_rate=0.3333, flag_rate=0.3333,
            approval_rate=1.0, false_flag_rate=0.0, tokens_per_forward=1.375, items_per_hour=4.0),
        (d2, "article", "model-b", "ar"): dict(
            items=1, first_pass_rate=1.0, final_pass_rate=1.0, fallback_rate=0.0, flag_rate=0.0,
            approval_rate=None, false_flag_rate=None, tokens_per_forward=1.0, items_per_hour=10.0),
    }
    for key, values in expected.items():
        got = rows[key].as_dict()
        assert {k: got[k] for k in values} == values, key
    assert rows[(d1, "article", "model-a", "hybrid")].reviewed == 2
    assert rows[(d2, "article", "model-a", "hybrid")].flagged == 1


def test_alerts_name_rate_day_group_value_and_threshold_and_need_enough_items(db_url):
    seed_metrics(db_url)
    rows = sorted(rows_by_key(db_url).values(), key=lambda r: (r.day, r.group))
    thresholds = parse_alert_thresholds("flag_rate>0.4,final_pass_rate<0.7,approval_rate<0.6")
    alerts = find_alerts(rows, thresholds, min_items=2)
    assert [(a.threshold.metric, a.row.day, a.row.group, a.value) for a in alerts] == [
        ("flag_rate", "2026-12-03", "article/model-a/hybrid", 0.5),
        ("final_pass_rate", "2026-12-03", "article/model-a/hybrid", 0.5),
        ("approval_rate", "2026-12-03", "article/model-a/hybrid", 0.5),
        ("final_pass_rate", "2026-12-03", "product/model-a/hybrid", 0.5),
        ("final_pass_rate", "2026-12-04", "article/model-a/hybrid", 0.6667),
    ]
    assert alerts[0].message == "flag_rate 0.5 > 0.4 on 2026-12-03 for article/model-a/hybrid (4 items)"
    assert alerts[2].as_dict() == {
        "metric": "approval_rate", "day": "2026-12-03", "kind": "article", "model": "model-a", "mode": "hybrid",
        "value": 0.5, "op": "<", "threshold": 0.6, "items": 2,
        "message": "approval_rate 0.5 < 0.6 on 2026-12-03 for article/model-a/hybrid (2 items)"}
    # three items at least: the 2-item product day and the 2-review approval rate no longer alert
    assert [(a.threshold.metric, a.row.group) for a in find_alerts(rows, thresholds, min_items=3)] == [
        ("flag_rate", "article/model-a/hybrid"), ("final_pass_rate", "article/model-a/hybrid"),
        ("final_pass_rate", "article/model-a/hybrid")]
    assert find_alerts(rows, thresholds, min_items=5) == []


def test_the_report_covers_the_last_days_and_batch_alerts_only_the_batchs_groups(db_url):
    seeded = seed_metrics(db_url)
    thresholds = parse_alert_thresholds("flag_rate>0.4,final_pass_rate<0.7")
    with session_factory(db_url)() as s:
        report = metrics_report(s, thresholds, 2, days=2, today=DAY2)
        assert report.days == ["2026-12-03", "2026-12-04"] and len(report.rows) == 4
        only_today = metrics_report(s, thresholds, 2, days=1, today=DAY2)
        assert {r.day for r in only_today.rows} == {"2026-12-04"}
        as_json = report.as_dict()
        assert as_json["thresholds"] == ["flag_rate>0.4", "final_pass_rate<0.7"] and len(as_json["alerts"]) == 4
        assert set(as_json["definitions"]) == set(METRICS)
        # batch 1 finished on day 1: its groups' alerts of that day; `other` finished on day 2
        first = [(a.threshold.metric, a.row.day, a.row.kind)
                 for a in batch_alerts(s, seeded.hybrid_batch, thresholds, 2)]
        assert first == [("flag_rate", "2026-12-03", "article"), ("final_pass_rate", "2026-12-03", "article"),
                         ("final_pass_rate", "2026-12-03", "product")]
        second = [(a.threshold.metric, a.row.day) for a in batch_alerts(s, seeded.other_batch, thresholds, 2)]
        assert second == [("final_pass_rate", "2026-12-04")]
        assert batch_alerts(s, seeded.ar_batch, thresholds, 1) == []  # model-b in ar mode passed
        assert batch_alerts(s, seeded.hybrid_batch, (), 1) == []
        with pytest.raises(ValueError, match="days must be from 1 to 366"):
            metrics_report(s, days=0)


def test_no_finished_items_means_no_rows_and_no_alerts(db_url):
    with session_factory(db_url)() as s:
        assert daily_metrics(s, DAY1, DAY2) == []
        assert metrics_report(s, parse_alert_thresholds("flag_rate>0.1"), 1, days=3, today=DAY2).alerts == []


# -- the thresholds setting --------------------------------------------------------------------------------
def test_thresholds_parse_into_metric_operator_and_value():
    assert parse_alert_thresholds(" flag_rate > 0.3 , final_pass_rate<0.7,items_per_hour<250") == (
        Threshold("flag_rate", ">", 0.3), Threshold("final_pass_rate", "<", 0.7),
        Threshold("items_per_hour", "<", 250.0))
    assert parse_alert_thresholds("") == ()
    settings = Settings.from_env({"HYBRIDGEN_ALERT_THRESHOLDS": "fallback_rate>0.5", "HYBRIDGEN_ALERT_MIN_ITEMS": "3"})
    assert settings.alert_threshold_list == (Threshold("fallback_rate", ">", 0.5),) and settings.alert_min_items == 3
    assert Threshold("flag_rate", ">", 0.3).crossed(0.31) and not Threshold("flag_rate", ">", 0.3).crossed(0.3)
    assert Threshold("final_pass_rate", "<", 0.7).crossed(0.5)
    assert str(Threshold("flag_rate", ">", 0.3)) == "flag_rate>0.3"


BAD_THRESHOLDS = [
    ("flag_rat>0.3", "'flag_rat>0.3' names 'flag_rat', which is no rate; did you mean flag_rate? expected one of "
                     "first_pass_rate, final_pass_rate, fallback_rate, flag_rate, approval_rate, false_flag_rate, "
                     "tokens_per_forward, items_per_hour"),
    ("speed<3", "'speed<3' names 'speed', which is no rate; expected one of first_pass_rate,"),
    ("flag_rate>abc", "'flag_rate>abc': 'abc' is not a number"),
    ("flag_rate>", "'flag_rate>': '' is not a number"),
    ("flag_rate>nan", "'flag_rate>nan': 'nan' is not a number"),
    ("flag_rate=0.3", "'flag_rate=0.3' should look like 'flag_rate>0.3' (a rate, > or <, a number)"),
    ("flag_rate>1.5", "'flag_rate>1.5': flag_rate is a rate from 0 to 1, got 1.5"),
    ("items_per_hour<-1", "'items_per_hour<-1': items_per_hour is at least 0, got -1"),
    ("flag_rate>0.3,flag_rate>0.4", "names flag_rate> twice; keep one"),
]


@pytest.mark.parametrize("value, message", BAD_THRESHOLDS, ids=[v for v, _ in BAD_THRESHOLDS])
def test_a_bad_threshold_is_refused_naming_the_rate_and_the_allowed_names(value, message):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"HYBRIDGEN_ALERT_THRESHOLDS": value})
    assert str(raised.value).startswith("HYBRIDGEN_ALERT_THRESHOLDS")
    assert message in str(raised.value)


def test_alert_min_items_must_be_at_least_one():
    with pytest.raises(SettingsError, match="HYBRIDGEN_ALERT_MIN_ITEMS=0 must be at least 1"):
        Settings.from_env({"HYBRIDGEN_ALERT_MIN_ITEMS": "0"})


def test_the_cli_refuses_a_bad_threshold_before_reading_the_database(env, monkeypatch, tmp_path):
    monkeypatch.setenv("HYBRIDGEN_ALERT_THRESHOLDS", "flagrate>0.3")
    result = invoke("status", "1")
    assert result.exit_code == 1 and "did you mean flag_rate?" in result.output
    assert list((tmp_path / "data").iterdir()) == []


# -- `hybridgen status` --------------------------------------------------------------------------------------
@pytest.fixture
def metrics_env(env, db_url, monkeypatch):
    monkeypatch.setenv("HYBRIDGEN_DATABASE_URL", db_url)
    return db_url


def test_status_shows_the_batchs_quality_alerts_in_text_and_json(metrics_env, monkeypatch):
    seeded = seed_metrics(metrics_env)
    monkeypatch.setenv("HYBRIDGEN_ALERT_THRESHOLDS", "flag_rate>0.4,final_pass_rate<0.7")
    monkeypatch.setenv("HYBRIDGEN_ALERT_MIN_ITEMS", "3")
    result = invoke("status", str(seeded.hybrid_batch), "--json")
    assert result.exit_code == 0, result.output
    alerts = json.loads(result.output)["quality_alerts"]
    assert [(a["metric"], a["day"], a["kind"], a["model"], a["mode"], a["value"], a["op"], a["threshold"], a["items"])
            for a in alerts] == [("flag_rate", "2026-12-03", "article", "model-a", "hybrid", 0.5, ">", 0.4, 4),
                                 ("final_pass_rate", "2026-12-03", "article", "model-a", "hybrid", 0.5, "<", 0.7, 4)]
    text = invoke("status", str(seeded.hybrid_batch))
    assert text.exit_code == 0, text.output
    assert "alert: flag_rate 0.5 > 0.4 on 2026-12-03 for article/model-a/hybrid (4 items)" in text.output
    assert "alert: final_pass_rate 0.5 < 0.7 on 2026-12-03 for article/model-a/hybrid (4 items)" in text.output
    assert "not computed" not in text.output

    quiet = invoke("status", str(seeded.ar_batch), "--json")  # thresholds set, none crossed: [] and "none"
    assert json.loads(quiet.output)["quality_alerts"] == []
    assert "quality alerts: none" in invoke("status", str(seeded.ar_batch)).output
    monkeypatch.delenv("HYBRIDGEN_ALERT_THRESHOLDS")
    assert json.loads(invoke("status", str(seeded.hybrid_batch), "--json").output)["quality_alerts"] is None
    assert "quality alerts: not computed (no thresholds: set HYBRIDGEN_ALERT_THRESHOLDS)" in \
        invoke("status", str(seeded.hybrid_batch)).output


# -- GET /api/metrics ----------------------------------------------------------------------------------------
def api_client(url: str, tmp_path, thresholds: str = "flag_rate>0.4") -> tuple[TestClient, str]:
    settings = Settings(data_dir=tmp_path, database_url=url, alert_thresholds=thresholds, alert_min_items=2)
    with session_factory(url).begin() as s:
        create_user(s, "alice", "correct horse battery")
        token = create_token(s, "alice", "tests").token
    return TestClient(create_app(settings, AppServices(settings, session_factory(url), lambda ids: 1))), token


def test_api_metrics_needs_a_token_and_answers_rows_and_alerts(migrated_sqlite, tmp_path):
    today = datetime.now(timezone.utc).date()
    seed_metrics(migrated_sqlite, today - timedelta(days=1), today)
    client, token = api_client(migrated_sqlite, tmp_path)
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers={"Authorization": "Bearer hg_not-a-token"}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    answer = client.get("/api/metrics?days=2", headers=auth)  # the seed's two days (a third holds one more item)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"since", "until", "timezone", "definitions", "thresholds", "alert_min_items", "rows", "alerts"}
    assert body["timezone"] == "UTC" and body["thresholds"] == ["flag_rate>0.4"] and body["alert_min_items"] == 2
    assert len(body["rows"]) == 4
    row = next(r for r in body["rows"] if r["kind"] == "article" and r["mode"] == "hybrid"
               and r["day"] == (today - timedelta(days=1)).isoformat())
    assert {k: row[k] for k in ("model", "items", "flag_rate", "fallback_rate", "tokens_per_forward")} == {
        "model": "model-a", "items": 4, "flag_rate": 0.5, "fallback_rate": 0.75, "tokens_per_forward": 1.5}
    assert [(a["metric"], a["kind"], a["value"]) for a in body["alerts"]] == [("flag_rate", "article", 0.5)]
    assert len(client.get("/api/metrics?days=1", headers=auth).json()["rows"]) == 2  # today only
    assert len(client.get("/api/metrics", headers=auth).json()["rows"]) == 5  # 30 days: the day before too
    too_many = client.get("/api/metrics?days=400", headers=auth)
    assert too_many.status_code == 422 and "days" in too_many.text
    assert "/api/metrics" in client.get("/api/openapi.json", headers=auth).json()["paths"]


def test_the_metrics_page_needs_a_login_and_refuses_bad_days(migrated_sqlite, tmp_path):
    client, _ = api_client(migrated_sqlite, tmp_path)
    anonymous = client.get("/admin/metrics", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/admin/login" in anonymous.headers["location"]
    login = client.post("/admin/login", data={"username": "alice", "password": "correct horse battery"},
                        follow_redirects=False)
    assert login.status_code in (302, 303), login.text
    page = client.get("/admin/metrics")
    assert page.status_code == 200 and "Quality metrics" in page.text
    assert "no finished items in this period" in page.text and "No alert thresholds" not in page.text
    # a model name is typed configuration: in the table, the chart's legend and its attributes, escaped
    evil = '<img src=x onerror="alert(1)">'
    now = datetime.now(timezone.utc)
    with session_factory(migrated_sqlite).begin() as s:
        batch = Batch(name="evil.jsonl", mode="ar", params={"model": evil})
        s.add(batch)
        s.flush()
        add_item(s, batch, "article", "error", claimed=now - timedelta(minutes=5), finished=now)
    page = client.get("/admin/metrics")
    assert evil not in page.text and "<img" not in page.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text  # the template's escaping
    assert 'data-series="article/&lt;img src=x onerror=&quot;alert(1)&quot;&gt;/ar"' in page.text  # the chart's
    bad = client.get("/admin/metrics?days=abc")
    assert bad.status_code == 400 and "days must be a whole number from 1 to 366" in bad.text


# -- the charts ---------------------------------------------------------------------------------------------
def test_a_chart_escapes_every_label_and_marks_alert_points():
    evil = '<script>alert(1)</script>"&'
    svg = str(line_chart("chart-x", f"title {evil}", ["2026-12-03", "2026-12-04"],
                         [Series(f"article/{evil}/hybrid", [("2026-12-03", 0.25), ("2026-12-04", 0.5)],
                                 frozenset({"2026-12-04"}))],
                         guides=[Guide(f"flag_rate>0.4 {evil}", 0.4)], y_max=1.0))
    assert "<script>" not in svg and '"&' not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;" in svg
    assert svg.count('class="point"') == 1 and svg.count('class="point alert"') == 1
    assert 'data-day="2026-12-04" data-value="0.5"' in svg and "style" not in svg  # the CSP forbids inline style
    empty = str(line_chart("chart-y", "nothing", ["2026-12-04"], []))
    assert "no finished items in this period" in empty and "<circle" not in empty
