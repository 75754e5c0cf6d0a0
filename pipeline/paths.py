"""The generation paths, each producing one attempt per item.

    hybrid       AR plan (outlines) -> block-diffusion spans (refiner) -> assemble -> validate
    ar           AR plan (outlines) -> AR spans -> assemble -> validate          (mode=ar baseline)
    ar_fallback  after a failed hybrid attempt: full AR with constraints (guidance programs for the
                 product record and the code function, decoded on the engine through llguidance;
                 sampled AR spans under the plan for articles)
    plain        no plan: one plain prompt per item (pipeline/plain.py)

Every path batches all items of a chunk: one planner call, one span call per decoder setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from pipeline.fallback import program_output, run_programs
from pipeline.jobs import ItemJob
from pipeline.kinds import get_kind
from pipeline.planner import PlanResult, make_plans
from pipeline.runtime import Runtime
from pipeline.spans import SpanBatch, ar_generator, refiner_generator, write_spans
from service.storage.queries import AttemptRecord
from service.storage.types import utcnow
from pipeline.validation import all_passed, validate
from validators.base import Report

log = logging.getLogger(__name__)

FALLBACK_TEMPERATURE = 0.7


@dataclass
class Drafted:
    """One item's output of a path, before validation."""

    output: str | None
    plan: dict[str, Any] | None
    tokens: int
    forwards: int
    timings: dict[str, Any]
    problems: list[str]
    prompt_tokens: int = 0
    reports: list[Report] = field(default_factory=list)
    """What was found while drafting, before the validators (how a plain reply was read)."""


def plan_reports(plan: PlanResult) -> list[Report]:
    if plan.ok:
        if not plan.rounds:
            return [Report("plan", True, 1.0, "plan taken from the input whole (nothing to plan)")]
        how = "repaired from the input" if plan.repaired else "valid"
        return [Report("plan", True, 1.0, f"plan {how} after {plan.rounds} round(s)")]
    return [Report("plan", False, 0.0, "; ".join(plan.problems) or "no plan")]


def run_spans_path(jobs: Sequence[ItemJob], plans: dict[int, PlanResult], runtime: Runtime, *,
                   decoder: str, temperature: float = 0.0) -> dict[int, Drafted]:
    """Spans of every planned item, batched; decoder is 'refiner' or 'ar' (greedy unless a temperature)."""
    return {i: versions[0] for i, versions in
            draft_versions(jobs, plans, runtime, decoder=decoder, temperature=temperature).items()}


def draft_versions(jobs: Sequence[ItemJob], plans: dict[int, PlanResult], runtime: Runtime, *, decoder: str,
                   temperature: float = 0.0, versions: int = 1, seed_salt: int = 0) -> dict[int, list[Drafted]]:
    """`versions` drafts of every item (each a different seed when sampling), all spans of all of them in
    one batched decode per decoder setting. An item whose plan failed gets one Drafted without output."""
    settings = runtime.settings
    planned = [j for j in jobs if plans[j.item_id].ok]  # a plan that failed its checks goes to the fallback
    spans_by_item = {j.item_id: get_kind(j.kind).spans(j.input, plans[j.item_id].plan) for j in planned}
    # one batched decode per distinct decoder setting (kinds may have their own threshold / block size)
    groups: dict[Any, list[tuple[int, int, int]]] = {}  # key -> [(item id, version, span index)]
    for j in planned:
        key = runtime.refine_settings(j.kind) if decoder == "refiner" else "ar"
        for v in range(versions):
            for s_index in range(len(spans_by_item[j.item_id])):
                groups.setdefault(key, []).append((j.item_id, v, s_index))
    item_seed = {j.item_id: int(j.params.get("seed", settings.seed)) for j in planned}
    texts: dict[tuple[int, int, int], Any] = {}
    seconds: dict[int, float] = {}
    for key, members in groups.items():
        spans = [_capped(spans_by_item[i][k], settings.max_new_tokens) for i, _, k in members]
        seeds = [item_seed[i] * 31 + k + 1009 * (v + seed_salt) for i, v, k in members]
        if decoder == "refiner":
            generate = refiner_generator(runtime.refiner, key.decode_config(), key.strategy())
        else:
            generate = ar_generator(runtime.planner, temperature=temperature, top_p=settings.top_p)
        batch: SpanBatch = write_spans(spans, tokenizer=runtime.planner.tokenizer, generate=generate, seeds=seeds)
        for member, t in zip(members, batch.texts):
            texts[member] = t
        for i in {m[0] for m in members}:
            seconds[i] = seconds.get(i, 0.0) + batch.seconds
    out: dict[int, list[Drafted]] = {}
    for j in jobs:
        plan = plans[j.item_id]
        base_timings = {"plan": round(plan.seconds, 4), "plan_tokens": plan.generated_tokens,
                        "plan_forwards": plan.forward_passes, "plan_rounds": plan.rounds,
                        "plan_repaired": plan.repaired}
        if not plan.ok:
            out[j.item_id] = [Drafted(None, plan.plan, plan.generated_tokens, plan.forward_passes, base_timings,
                                      plan.problems or ["no plan"], plan.prompt_tokens)]
            continue
        out[j.item_id] = []
        for v in range(versions):
            parts = [texts[(j.item_id, v, k)] for k in range(len(spans_by_item[j.item_id]))]
            tokens = sum(p.generated_tokens for p in parts)
            forwards = sum(p.forward_passes for p in parts)
            timings = {**base_timings, decoder: round(seconds.get(j.item_id, 0.0), 4), f"{decoder}_tokens": tokens,
                       f"{decoder}_forwards": forwards,
                       f"{decoder}_tokens_per_forward": round(tokens / forwards, 4) if forwards else 0.0,
                       "span_finish": [p.finish_reason for p in parts]}
            if decoder == "refiner":
                timings["refiner_decoder"] = runtime.refine_settings(j.kind).describe()
            output = get_kind(j.kind).assemble(j.input, plan.plan, [p.text for p in parts])
            out[j.item_id].append(Drafted(output, plan.plan, plan.generated_tokens + tokens,
                                          plan.forward_passes + forwards, timings, plan.problems,
                                          plan.prompt_tokens + sum(p.prompt_tokens for p in parts)))
    return out


def _capped(span, cap: int):
    from dataclasses import replace

    return replace(span, max_new_tokens=max(1, min(span.max_new_tokens, cap)))


def draft_reports(job: ItemJob, drafted: Drafted, runtime: Runtime) -> list[Report]:
    """The drafting's own reports, then the kind's validators over the output (or why there is none)."""
    if drafted.output is None:
        return [*drafted.reports, Report("generation", False, 0.0, "no output: " + "; ".join(drafted.problems))]
    return [*drafted.reports, *validate(get_kind(job.kind), drafted.output, job.input, runtime.settings, drafted.plan)]


def to_attempt(job: ItemJob, path: str, drafted: Drafted, runtime: Runtime, started, models: dict,
               extra_reports: list[Report]) -> AttemptRecord:
    t_val = utcnow()
    reports = [*extra_reports, *draft_reports(job, drafted, runtime)]
    finished = utcnow()
    return AttemptRecord(
        path=path, passed=all_passed(reports), output=drafted.output, plan=drafted.plan,
        reports=[r.as_dict() for r in reports], models=models,
        timings={**drafted.timings, "validate": round((finished - t_val).total_seconds(), 4)},
        prompt_tokens=drafted.prompt_tokens, generated_tokens=drafted.tokens, forward_passes=drafted.forwards,
        started_at=started, finished_at=finished,
    )


def run_planned(jobs: Sequence[ItemJob], runtime: Runtime, *, decoder: str, path: str) -> dict[int, AttemptRecord]:
    started = utcnow()
    plans = make_plans(jobs, runtime.planner, seed=runtime.settings.seed, lookup=runtime.lookup,
                       width=runtime.lookup_width)
    drafted = run_spans_path(jobs, plans, runtime, decoder=decoder)
    models = {"planner": runtime.planner.name}
    if decoder == "refiner":
        models["refiner"] = runtime.refiner.name
    else:
        models["ar"] = runtime.planner.name
    return {j.item_id: to_attempt(j, path, drafted[j.item_id], runtime, started, models,
                                  plan_reports(plans[j.item_id])) for j in jobs}


def run_fallback(jobs: Sequence[ItemJob], plans: dict[int, dict | None], runtime: Runtime) -> dict[int, AttemptRecord]:
    """Full AR for items whose hybrid attempt failed (plans: the hybrid attempt's plan, if any)."""
    started = utcnow()
    lm = runtime.planner
    out: dict[int, AttemptRecord] = {}
    program_jobs, programs, span_jobs = [], [], []
    for j in jobs:
        fb = get_kind(j.kind).fallback(j.input, plans.get(j.item_id) or {})
        if fb.kind == "guidance":
            program_jobs.append(j)
            programs.append(fb)
        else:
            span_jobs.append(j)
    if program_jobs:
        seeds = [runtime.settings.seed * 100003 + j.item_id for j in program_jobs]
        try:
            results = run_programs(lm, programs, seeds, lookup=runtime.lookup, width=runtime.lookup_width)
        except Exception as e:  # noqa: BLE001 - a refused grammar fails its chunk's programs, never the chunk
            log.exception("fallback programs failed for items %s", [j.item_id for j in program_jobs])
            results = [e] * len(program_jobs)
        for j, result in zip(program_jobs, results):
            if isinstance(result, Exception):
                drafted = Drafted(None, plans.get(j.item_id), 0, 0, {},
                                  [f"fallback program failed: {type(result).__name__}: {result}"])
            elif result.problem is not None:
                drafted = Drafted(None, plans.get(j.item_id), result.generated_tokens, result.forward_passes,
                                  {"program": round(result.seconds, 4)}, [f"fallback program: {result.problem}"])
            else:
                drafted = Drafted(program_output(get_kind(j.kind), result, j.input), plans.get(j.item_id),
                                  result.generated_tokens, result.forward_passes, {"program": round(result.seconds, 4)},
                                  [])
            out[j.item_id] = to_attempt(j, "ar_fallback", drafted, runtime, started,
                                        {"ar": lm.name, "constraints": "guidance grammar (llguidance)"}, [])
    if span_jobs:
        plan_results = {j.item_id: PlanResult(plan=plans.get(j.item_id)) for j in span_jobs}
        missing = [j for j in span_jobs if not get_kind(j.kind).check_plan(j.input, plans[j.item_id] or {}) == []
                   or plans.get(j.item_id) is None]
        if missing:
            plan_results.update(make_plans(missing, lm, seed=runtime.settings.seed + 7, lookup=runtime.lookup,
                                           width=runtime.lookup_width))
        drafted = run_spans_path(span_jobs, plan_results, runtime, decoder="ar", temperature=FALLBACK_TEMPERATURE)
        for j in span_jobs:
            out[j.item_id] = to_attempt(j, "ar_fallback", drafted[j.item_id], runtime, started, {"ar": lm.name},
                                        plan_reports(plan_results[j.item_id]) if j in missing else [])
    return out
