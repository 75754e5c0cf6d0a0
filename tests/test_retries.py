"""Sampled retries of failed AR-written attempts (pipeline/retries.py), on the tiny model: one batched
decode of N sampled versions under the attempt's plan, the first passing version kept, its cost and
a `retries` report added to the same attempt."""

from __future__ import annotations

import pytest

from pipeline.jobs import ItemJob
from pipeline.orchestrator import _generate
from pipeline.paths import draft_versions
from pipeline.planner import PlanResult
from pipeline.retries import retry_failed
from pipeline.runtime import Runtime
from pipeline.settings import Settings, SettingsError
from service.storage.queries import AttemptRecord
from validators.base import Report

CODE_INPUT = {"prompt": "Write a function add(a, b) that adds two numbers.", "tests": ["assert add(1, 2) == 3"]}
PLAN = {"signature": "def add(a, b):", "steps": []}


@pytest.fixture
def runtime(tiny_settings):
    return Runtime(tiny_settings.replace(max_new_tokens=16, retry_samples="code=3"))


def code_job(item_id=1, mode="ar"):
    return ItemJob(item_id, 1, "code", CODE_INPUT, {}, mode)


def failed_attempt(output="def add(a, b):\n    return 0\n"):
    return AttemptRecord(path="ar", passed=False, output=output, plan=PLAN, generated_tokens=10, forward_passes=10,
                         prompt_tokens=40, timings={"ar": 1.0},
                         reports=[Report("plan", True, 1.0, "plan valid").as_dict(),
                                  Report("sandbox_tests", False, 0.0, "0/1 tests passed").as_dict()])


def test_retry_samples_setting_is_read_per_kind_and_rejects_malformed_values():
    assert Settings().retry_samples_by_kind == {"code": 3, "product": 2}
    assert Settings(retry_samples="code=5, product=1").retry_samples_by_kind == {"code": 5, "product": 1}
    assert Settings(retry_samples="").retry_samples_by_kind == {}
    for bad in ("code:3", "poem=2", "code=99", "code=-1", "code"):
        with pytest.raises(SettingsError, match="HYBRIDGEN_RETRY_SAMPLES"):
            Settings(retry_samples=bad)
    with pytest.raises(SettingsError, match="HYBRIDGEN_RETRY_TEMPERATURE"):
        Settings(retry_temperature=0)


def test_versions_are_distinct_samples_and_repeatable(runtime, monkeypatch):
    from pipeline.kinds.code import Code

    spans = []  # what the model wrote (the tiny model's noise is no prose comment, so the outputs drop it)
    assemble = Code.assemble
    monkeypatch.setattr(Code, "assemble", lambda self, ji, plan, texts: spans.append(texts[0]) or
                        assemble(self, ji, plan, texts))
    job = code_job()
    plans = {1: PlanResult(plan=PLAN)}
    first = draft_versions([job], plans, runtime, decoder="ar", temperature=1.0, versions=3, seed_salt=1)[1]
    again = draft_versions([job], plans, runtime, decoder="ar", temperature=1.0, versions=3, seed_salt=1)[1]
    assert [d.output for d in first] == [d.output for d in again] and spans[:3] == spans[3:]  # same seeds
    assert len(set(spans[:3])) > 1  # different seeds per version
    assert all(d.output.startswith("def add(a, b):\n") for d in first)  # under the plan
    assert all(d.tokens > 0 and d.forwards > 0 for d in first)


def test_first_passing_version_is_kept_with_its_cost_and_a_retries_report(runtime, monkeypatch):
    calls = []

    def second_version_passes(kind, text, job_input, settings, plan=None):
        calls.append(text)
        return [Report("sandbox_tests", len(calls) == 2, 1.0, "stand-in for the sandbox")]

    monkeypatch.setattr("pipeline.paths.validate", second_version_passes)  # what every draft is checked by
    before = failed_attempt()
    after = retry_failed([code_job()], {1: before}, runtime)[1]
    assert after.passed and after.output == calls[1] != before.output
    assert len(calls) == 2  # validation stops at the first passing version
    assert [r["validator"] for r in after.reports] == ["plan", "sandbox_tests", "retries"]
    retries = after.reports[-1]
    assert retries["passed"] and retries["details"] == {"version": 2, "tried": 2}
    assert "sandbox_tests" in retries["message"]  # names what the first draft failed
    t = after.timings
    assert t["retry_samples"] == 3 and t["retry_passed_version"] == 2 and t["retry_tokens"] > 0
    # all three versions were decoded (one batch), so all three count
    assert after.generated_tokens == before.generated_tokens + t["retry_tokens"]
    assert after.forward_passes == before.forward_passes + t["retry_forwards"]
    assert after.prompt_tokens > before.prompt_tokens and after.path == "ar"


def test_no_passing_version_keeps_the_first_draft_and_says_so(runtime):
    before = failed_attempt()
    after = retry_failed([code_job()], {1: before}, runtime)[1]  # random tiny-model bodies fail the test
    assert not after.passed and after.output == before.output
    assert after.reports[:2] == before.reports
    assert after.reports[-1]["validator"] == "retries" and not after.reports[-1]["passed"]
    assert "none of 3 sampled versions" in after.reports[-1]["message"]
    assert after.timings["retry_passed_version"] is None and after.generated_tokens > before.generated_tokens


def test_what_is_not_retried(runtime):
    passed = AttemptRecord(path="ar", passed=True, output="x", plan=PLAN)
    no_plan = AttemptRecord(path="ar_fallback", passed=False, output=None, plan=None)
    broken_plan = AttemptRecord(path="ar", passed=False, output="x", plan={**PLAN, "signature": "def add(a, b:"})
    article = ItemJob(4, 1, "article", {"topic": "tea"}, {}, "ar")  # no retry samples for articles
    article_attempt = AttemptRecord(path="ar", passed=False, output="x", plan={"title": "t", "sections": []})
    attempts = {1: passed, 2: no_plan, 3: broken_plan, 4: article_attempt}
    out = retry_failed([code_job(1), code_job(2), code_job(3), article], attempts, runtime)
    assert all(out[i] is attempts[i] for i in attempts)
    off = Runtime(runtime.settings.replace(retry_samples="code=0"))
    assert retry_failed([code_job()], {1: failed_attempt()}, off)[1].timings == {"ar": 1.0}


def test_retries_stay_inside_the_attempt_in_both_modes(runtime, monkeypatch):
    """AR mode: still one attempt per item; hybrid: the hybrid attempt is retried, its fallback is not."""
    from pipeline.kinds import KINDS

    for kind in KINDS.values():
        monkeypatch.setattr(type(kind), "check_plan", lambda self, job_input, plan: [])
    ar = _generate([code_job(1, "ar")], runtime)[1]
    [attempt] = ar.attempts
    assert attempt.timings["retry_samples"] == 3 and attempt.reports[-1]["validator"] == "retries"
    hybrid = _generate([code_job(1, "hybrid")], runtime)[1]
    first, fallback = hybrid.attempts
    assert first.path == "hybrid" and first.timings["retry_samples"] == 3
    assert first.reports[-1]["validator"] == "retries"
    assert fallback.path == "ar_fallback" and "retry_samples" not in fallback.timings
