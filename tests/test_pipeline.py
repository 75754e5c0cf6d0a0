"""The hybrid pipeline end to end on a tiny model: plan -> refine -> validate -> fallback -> status,
and the attempt rows it leaves. Generated text of a random tiny model is noise, so a passing run
turns validators off, and a failing run shows the fallback and the flag."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pipeline.jobs import ItemJob
from pipeline.orchestrator import _generate, run_chunk
from generators.decoding.commit_rules import CommitRule, Verify
from pipeline.runtime import RefineSettings, Runtime, parse_overrides, refine_settings
from pipeline.settings import SettingsError
from service.spec import parse_jsonl
from service.storage.db import session_factory
from service.storage.models import Attempt, Item
from service.submission import submit_batch
from validators.registry import ALL_VALIDATORS as VALIDATOR_NAMES

ALL_VALIDATORS = ",".join(VALIDATOR_NAMES)
JOBS = [
    {"kind": "article", "input": {"topic": "tea", "sections": 2}},
    {"kind": "product", "input": {"name": "Mug", "attributes": {"colour": "red", "capacity": "350 ml"}}},
    {"kind": "code", "input": {"prompt": "Write a function add(a, b).", "tests": ["assert add(1, 2) == 3"]}},
]


def jobs(mode="hybrid"):
    parsed = parse_jsonl("\n".join(json.dumps(j) for j in JOBS))
    return [ItemJob(i + 1, 1, j.kind, j.input, {}, mode) for i, j in enumerate(parsed.jobs)]


@pytest.fixture
def runtime(tiny_settings):
    return Runtime(tiny_settings.replace(max_new_tokens=16))


def accept_any_plan(monkeypatch):
    """A random tiny model's plans fail the kinds' checks (facts not from the attributes...)."""
    from pipeline.kinds import KINDS

    for kind in KINDS.values():
        monkeypatch.setattr(type(kind), "check_plan", lambda self, job_input, plan: [])


def test_each_kind_goes_plan_refine_validate_when_validators_pass(runtime, monkeypatch):
    accept_any_plan(monkeypatch)
    runtime.settings = runtime.settings.replace(validators_disabled=ALL_VALIDATORS)
    out = _generate(jobs(), runtime)
    for item_id, outcome in out.items():
        assert outcome.status == "done", outcome.attempts[-1].reports
        [attempt] = outcome.attempts  # no fallback needed
        assert attempt.path == "hybrid" and attempt.passed and attempt.plan
        assert attempt.models == {"planner": "tiny-llama", "refiner": "tiny-llama"}
        t = attempt.timings
        assert t["plan_tokens"] > 0 and t["refiner_tokens"] > 0 and t["refiner_forwards"] > 0
        assert attempt.generated_tokens == t["plan_tokens"] + t["refiner_tokens"]
        assert attempt.reports[0]["validator"] == "plan" and attempt.reports[0]["passed"]
    article = out[1].attempts[0]
    assert article.output.startswith(f"# {article.plan['title'].strip()}")
    assert [s["heading"] in article.output for s in article.plan["sections"]] == [True, True]


def test_an_item_whose_draft_passes_is_settled_before_the_others_retry_and_fall_back(runtime, monkeypatch):
    accept_any_plan(monkeypatch)
    article_checks = "markdown_structure,degeneration,meta_debris,garbled,topicality,contradiction"
    runtime.settings = runtime.settings.replace(validators_disabled=article_checks)  # code still fails its syntax
    settled: list[tuple[int, int]] = []  # (item id, attempts when it settled)
    out = _generate([j for j in jobs() if j.kind in ("article", "code")], runtime,
                    settle=lambda item_id, outcome: settled.append((item_id, len(outcome.attempts))))
    assert settled == [(1, 1), (3, 2)], "the article is stored after its draft; the code after its fallback"
    assert out[1].status == "done" and [a.path for a in out[3].attempts] == ["hybrid", "ar_fallback"]


def test_validator_failure_falls_back_to_ar_then_flags(runtime):
    out = _generate(jobs(), runtime)  # random text fails the real validators
    for outcome in out.values():
        paths = [a.path for a in outcome.attempts]
        assert paths == ["hybrid", "ar_fallback"]
        assert not outcome.attempts[0].passed
        assert outcome.status == ("done" if outcome.attempts[1].passed else "flagged")
        assert outcome.final_path == "ar_fallback" and outcome.output == outcome.attempts[1].output
    product_fallback = out[2].attempts[1]
    record = json.loads(product_fallback.output)  # guidance: valid JSON by construction
    assert set(record) == {"title", "tagline", "facts", "description", "attributes"} and len(record["facts"]) >= 2
    assert record["attributes"] == JOBS[1]["input"]["attributes"]  # the user's attributes, as given
    json_report = next(r for r in product_fallback.reports if r["validator"] == "json_schema")
    assert json_report["passed"]
    code_fallback = out[3].attempts[1]
    assert code_fallback.output.lstrip().startswith("def add(")  # guidance: the header the tests call


def test_ar_mode_is_one_attempt_without_refiner(runtime):
    out = _generate(jobs(mode="ar"), runtime)
    for outcome in out.values():
        [attempt] = outcome.attempts
        assert attempt.path == "ar" and "refiner" not in attempt.models and "ar_tokens" in attempt.timings or \
            attempt.reports[0]["validator"] == "plan"


def test_hybrid_can_be_turned_off_per_kind(runtime):
    runtime.settings = runtime.settings.replace(hybrid_kinds="article")
    out = _generate(jobs(), runtime)
    assert out[1].attempts[0].path == "hybrid"
    assert [a.path for a in out[2].attempts] == ["ar"] and [a.path for a in out[3].attempts] == ["ar"]


def test_replanning_with_sampling_when_a_plan_fails_its_checks(runtime, monkeypatch):
    from pipeline.kinds.article import Article

    calls = {"n": 0}
    original = Article.check_plan

    def fail_first(self, job_input, plan):
        calls["n"] += 1
        return ["forced failure"] if calls["n"] == 1 else original(self, job_input, plan)

    monkeypatch.setattr(Article, "check_plan", fail_first)
    runtime.settings = runtime.settings.replace(validators_disabled=ALL_VALIDATORS)
    out = _generate(jobs()[:1], runtime)
    attempt = out[1].attempts[0]
    assert attempt.timings["plan_rounds"] == 2 and attempt.passed


def test_attempt_rows_and_status_are_stored(runtime, db_url):
    runtime.settings = runtime.settings.replace(database_url=db_url)
    sessions = session_factory(db_url)
    ids = submit_batch(sessions, parse_jsonl("\n".join(json.dumps(j) for j in JOBS)), name="t", mode="hybrid").new_item_ids
    run_chunk(ids, sessions=sessions, runtime=runtime)
    with sessions() as s:
        for item in s.execute(select(Item).order_by(Item.id)).scalars():
            attempts = s.execute(select(Attempt).where(Attempt.item_id == item.id).order_by(Attempt.id)).scalars().all()
            assert [a.path for a in attempts] == ["hybrid", "ar_fallback"]
            assert item.final_attempt_id == attempts[-1].id and item.final_path == "ar_fallback"
            assert item.status in {"done", "flagged"} and attempts[0].plan is not None or not attempts[0].passed
            assert all(a.reports and a.forward_passes >= 1 for a in attempts)


def test_refiner_overrides_per_kind(tiny_settings):
    s = tiny_settings.replace(refiner_overrides="code:threshold=0.95,block=8;article:sub=2,no_repeat=6",
                              refiner_block_size=4)
    s = s.replace(refiner_drafts=0)
    assert refine_settings(s, "code") == RefineSettings(8, 8, 0.95, 0, 0, None)
    assert refine_settings(s, "article") == RefineSettings(4, 2, 0.9, 6, 0, None)
    assert refine_settings(s, "product") == RefineSettings(4, 4, 0.9, 0, 0, None)
    assert refine_settings(s, "product").strategy() == CommitRule("threshold", threshold=0.9)
    # draft-and-verify: the default, and per kind
    assert refine_settings(tiny_settings, "product").strategy() == Verify(drafts=2, forward_budget=None)
    assert refine_settings(tiny_settings, "product", cuda=True).forward_budget is None  # the cost table decides
    mixed = s.replace(refiner_overrides="code:drafts=3;article:no_repeat=6", refiner_forward_budget=40)
    assert refine_settings(mixed, "code").strategy() == Verify(drafts=3, forward_budget=40)
    assert refine_settings(mixed, "article").decode_config().no_repeat_ngram == 6
    assert not refine_settings(mixed, "article").strategy().verifies
    with pytest.raises(ValueError, match="no_repeat=1 must be"):
        refine_settings(tiny_settings.replace(refiner_overrides="article:no_repeat=1"), "article")
    with pytest.raises(ValueError, match="drafts=2.5 must be"):
        refine_settings(tiny_settings.replace(refiner_overrides="article:drafts=2.5"), "article")
    with pytest.raises(SettingsError, match="HYBRIDGEN_REFINER_DRAFTS=-1"):
        tiny_settings.replace(refiner_drafts=-1)
    with pytest.raises(SettingsError, match="HYBRIDGEN_REFINER_FORWARD_BUDGET=-2"):
        tiny_settings.replace(refiner_forward_budget=-2)
    for bad in ("poem:threshold=1", "code:speed=2", "code:threshold=high", "code"):
        with pytest.raises(ValueError, match="HYBRIDGEN_REFINER_OVERRIDES"):
            parse_overrides(bad)


def test_hybrid_spans_are_the_ar_modes_spans_and_the_threshold_decoder_stays_selectable(runtime, monkeypatch):
    accept_any_plan(monkeypatch)
    runtime.settings = runtime.settings.replace(validators_disabled=ALL_VALIDATORS)
    ar = _generate(jobs("ar"), runtime)
    hybrid = _generate(jobs("hybrid"), runtime)
    for item_id in ar:
        [a], [h] = ar[item_id].attempts, hybrid[item_id].attempts
        # draft-and-verify keeps only what the AR model would write: the same item, token for token
        assert h.path == "hybrid" and h.output == a.output
        assert h.timings["refiner_decoder"].startswith("draft-and-verify")
    runtime.settings = runtime.settings.replace(refiner_drafts=0)
    threshold = _generate(jobs("hybrid"), runtime)
    assert all(o.attempts[0].timings["refiner_decoder"].startswith("threshold 0.9") for o in threshold.values())
    assert any(threshold[i].output != ar[i].output for i in ar)  # the random tiny adapter-less refiner drifts
