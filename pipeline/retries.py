"""Sampled retries: a failed AR-written attempt writes N sampled versions of its spans under the same
plan, in one batch, and keeps the first version that passes every validator.

    attempt failed ──► N sampled drafts (one batched AR decode) ──► validate in order ──► first pass wins

The hybrid and `ar` attempts retry with AR-written spans; a `plain` attempt has no plan, so its
retries are N sampled replies to the same plain prompt (pipeline/plain.py passes its own `redraft`):
the baseline gets the same budget. Measured on the pipeline benchmark's 15 code jobs (2026-11-28,
docs/benchmarks.md): 8 sampled AR bodies per job solved 3 jobs, 2 of them MBPP tasks that every
greedy body had failed, in 234 s; 8 sampled refiner bodies solved 1, in 680 s.

The retry belongs to the attempt it rescues: its tokens, forwards and seconds are added to that
attempt, and a `retries` report says how many versions were tried and which one passed, so a
reviewer sees that the delivered text is a sample and not the greedy draft.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

from pipeline.jobs import ItemJob
from pipeline.kinds import get_kind
from pipeline.paths import Drafted, draft_reports, draft_versions
from pipeline.planner import PlanResult
from pipeline.runtime import Runtime
from service.storage.queries import AttemptRecord
from service.storage.types import utcnow
from pipeline.validation import all_passed
from validators.base import Report

Redraft = Callable[[Sequence[ItemJob], int], dict[int, list[Drafted]]]
"""(jobs, n) -> n sampled drafts of each job, written in one batch."""


def retry_failed(jobs: Sequence[ItemJob], attempts: dict[int, AttemptRecord], runtime: Runtime,
                 redraft: Redraft | None = None) -> dict[int, AttemptRecord]:
    """`attempts` with every failed one of a kind that has retry samples (HYBRIDGEN_RETRY_SAMPLES)
    retried; the others are returned as they are. Without `redraft`, a retry writes sampled AR spans
    under the attempt's plan, and only attempts whose plan passes its checks are retried."""
    settings = runtime.settings
    samples = settings.retry_samples_by_kind
    todo = [j for j in jobs
            if j.item_id in attempts and not attempts[j.item_id].passed and samples.get(j.kind, 0) > 0]
    if redraft is None:
        plans = {j.item_id: _checked_plan(j, attempts[j.item_id]) for j in todo}
        todo = [j for j in todo if plans[j.item_id].ok]

        def redraft(group: Sequence[ItemJob], n: int) -> dict[int, list[Drafted]]:
            return draft_versions(group, plans, runtime, decoder="ar", temperature=settings.retry_temperature,
                                  versions=n, seed_salt=1)
    out = dict(attempts)
    for n in sorted({samples[j.kind] for j in todo}):
        group = [j for j in todo if samples[j.kind] == n]
        t0 = time.perf_counter()
        drafts = redraft(group, n)
        seconds = time.perf_counter() - t0
        for j in group:
            out[j.item_id] = _rescued(j, attempts[j.item_id], drafts[j.item_id], runtime, seconds)
    return out


def _checked_plan(job: ItemJob, attempt: AttemptRecord) -> PlanResult:
    if not attempt.plan:
        return PlanResult(problems=["no plan"])
    return PlanResult(plan=attempt.plan, problems=get_kind(job.kind).check_plan(job.input, attempt.plan))


def _rescued(job: ItemJob, attempt: AttemptRecord, versions: list[Drafted], runtime: Runtime,
             seconds: float) -> AttemptRecord:
    """The attempt after its retries: the first passing version's output and reports, or its own
    output and reports when none passed; either way with the retries' cost and a `retries` report."""
    t_val = time.perf_counter()
    winner: tuple[int, Drafted, list[Report]] | None = None
    for index, draft in enumerate(versions):
        reports = draft_reports(job, draft, runtime)
        if all_passed(reports):
            winner = (index, draft, reports)
            break
    validate_s = time.perf_counter() - t_val
    # the plans came without their planning cost (_checked_plan), so these are the retries' own
    tokens = sum(d.tokens for d in versions)
    forwards = sum(d.forwards for d in versions)
    prompt_tokens = sum(d.prompt_tokens for d in versions)
    failed_before = "; ".join(r["validator"] for r in attempt.reports if not r["passed"])
    temperature = runtime.settings.retry_temperature
    if winner is None:
        summary = Report("retries", False, 0.0, f"none of {len(versions)} sampled versions (T={temperature}) passed; "
                                                f"the first draft is kept (it failed: {failed_before})")
        output, reports = attempt.output, [*attempt.reports, summary.as_dict()]
    else:
        index, draft, passed_reports = winner
        summary = Report("retries", True, 1.0 / (index + 1),
                         f"sampled version {index + 1} of {len(versions)} (T={temperature}) passed after the first "
                         f"draft failed ({failed_before})", details={"version": index + 1, "tried": index + 1})
        kept = [r for r in attempt.reports if r["validator"] == "plan"]
        output, reports = draft.output, [*kept, *(r.as_dict() for r in passed_reports), summary.as_dict()]
    timings = {**attempt.timings, "retry": round(seconds, 4), "retry_validate": round(validate_s, 4),
               "retry_samples": len(versions), "retry_passed_version": winner[0] + 1 if winner else None,
               "retry_tokens": tokens, "retry_forwards": forwards}
    return replace(attempt, passed=winner is not None, output=output, reports=reports, timings=timings,
                   models={**attempt.models, "retry": f"{runtime.planner.name} sampled at T={temperature}"},
                   prompt_tokens=attempt.prompt_tokens + prompt_tokens,
                   generated_tokens=attempt.generated_tokens + tokens,
                   forward_passes=attempt.forward_passes + forwards, finished_at=utcnow())
