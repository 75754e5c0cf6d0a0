"""The planner: AR with outlines JSON-schema constraints, batched across the items of a chunk.

Each item's kind gives a plan prompt and schema; every row decodes under its own schema, so the
plan is valid JSON of the right shape by construction. The kind then checks what a schema cannot
(duplicate headings, facts not drawn from the attributes, a signature the tests do not call);
failing items are planned once more with sampling.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from generators.decoding.ar import ARConfig, generate_ar
from generators.decoding.lookup import PromptLookup
from generators.decoding.widths import WidthPolicy
from generators.constrained import RegexConstraint, regex_index, schema_regex
from generators.loading import LoadedModel
from generators.prompts import chat_ids
from pipeline.jobs import ItemJob
from pipeline.kinds import get_kind

log = logging.getLogger(__name__)

REPLAN_TEMPERATURE = 0.8
REFERENCE_CHARS_PER_TOKEN = 3.5
"""Plan budgets are written for a tokenizer like SmolLM2's (~3.5 characters of JSON per token)."""
_SAMPLE = '{"title": "Getting Started with Houseplants", "sections": [{"heading": "Light and Water", ' \
          '"points": ["most plants like bright indirect light"]}]}'


def budget_scale(tokenizer) -> float:
    """How many more tokens this tokenizer needs than the reference one for the same JSON text
    (a byte-level tokenizer needs ~3.5x), so plan budgets hold across tokenizers."""
    n = len(tokenizer(_SAMPLE, add_special_tokens=False)["input_ids"])
    return max(1.0, REFERENCE_CHARS_PER_TOKEN / (len(_SAMPLE) / max(1, n)))


@dataclass
class PlanResult:
    plan: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    rounds: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    repaired: bool = False
    drafts: list[dict[str, Any]] = field(default_factory=list)
    """Every parsed plan, first round first: a repair starts from the earliest one it can fix (a
    sampled re-plan can break what the greedy plan had right, e.g. a code signature that parsed)."""

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.problems


def make_plans(jobs: Sequence[ItemJob], lm: LoadedModel, *, seed: int = 0, lookup: PromptLookup | None = None,
               width: WidthPolicy | None = None) -> dict[int, PlanResult]:
    """Plan every job (a plan the job holds whole is taken as it is). `lookup` and `width`: prompt-lookup
    drafts and how many a step carries (they change the plan's speed, never the plan)."""
    results = {j.item_id: PlanResult() for j in jobs}
    todo = []
    for job in jobs:  # a plan the job already holds whole (a code prompt's own signature) is not decoded
        kind = get_kind(job.kind)
        known = getattr(kind, "known_plan", lambda job_input: None)(job.input)
        if known is not None and not kind.check_plan(job.input, known):
            results[job.item_id].plan = known
        else:
            todo.append(job)
    for round_no, temperature in enumerate((0.0, REPLAN_TEMPERATURE), start=1):
        if not todo:
            break
        _plan_round(todo, lm, results, temperature, seed + round_no, lookup, width)
        todo = [j for j in todo if not results[j.item_id].ok]
        if todo and round_no == 1:
            log.info("re-planning %d item(s) with sampling: %s", len(todo),
                     {j.item_id: results[j.item_id].problems[:2] for j in todo})
    for job in todo:  # still failing: a kind that can repair its plan does (e.g. facts from attributes)
        repair_plan(job, results[job.item_id])
    return results


def repair_plan(job: ItemJob, res: PlanResult) -> None:
    """Replace a failing plan with the first of its drafts that the kind's repair makes pass; when no
    draft parsed (or none can be fixed), with the plan the kind builds from the input alone, if it can
    (a product's facts from its attributes, an article's given headings, a function's given signature)."""
    kind = get_kind(job.kind)
    repair = getattr(kind, "repair_plan", None)
    if repair is None:
        return
    combine = getattr(kind, "combine_drafts", None)  # e.g. an article's distinct sections from all rounds
    combined = combine(job.input, res.drafts) if combine is not None and len(res.drafts) > 1 else None
    for draft in [*res.drafts, *([combined] if combined else []), {}]:
        repaired = repair(job.input, draft)
        if not kind.check_plan(job.input, repaired):
            res.plan, res.problems, res.repaired = repaired, [], True
            return


def plan_regex(request) -> str:
    """The constraint a plan row decodes under: the continuation after a forced prefix, or the schema's."""
    return request.continuation_regex if request.continuation_regex is not None else schema_regex(request.schema)


def _plan_round(jobs: Sequence[ItemJob], lm: LoadedModel, results: dict[int, PlanResult], temperature: float,
                seed: int, lookup: PromptLookup | None, width: WidthPolicy | None) -> None:
    t0 = time.perf_counter()
    tok = lm.tokenizer
    kinds = [get_kind(j.kind) for j in jobs]
    requests = [k.plan_request(j.input) for k, j in zip(kinds, jobs)]
    prompts = [chat_ids(tok, r.prompt.user, r.prompt.system, r.prompt.assistant_prefix) for r in requests]
    scale = budget_scale(tok)
    constraint = RegexConstraint([regex_index(tok, plan_regex(r)) for r in requests], tok.eos_token_id, tokenizer=tok)
    rows = generate_ar(
        lm.engine, prompts, eos_token_ids=lm.eos_token_ids, pad_token_id=lm.pad_token_id,
        config=ARConfig(temperature=temperature), seeds=[seed * 100003 + j.item_id for j in jobs],
        max_new_tokens=[int(r.max_new_tokens * scale) for r in requests], constraint=constraint,
        lookup=lookup, width=width,
    )
    seconds = time.perf_counter() - t0
    for job, kind, req, row in zip(jobs, kinds, requests, rows):
        res = results[job.item_id]
        res.rounds += 1
        res.prompt_tokens += len(prompts[jobs.index(job)])
        res.generated_tokens += row.generated_tokens
        res.forward_passes += row.forward_passes
        res.seconds += seconds
        text = req.prompt.assistant_prefix + tok.decode(row.token_ids, skip_special_tokens=True)
        try:
            plan = kind.normalise_plan(job.input, json.loads(text))
        except json.JSONDecodeError as e:
            reason = "the plan hit its token budget before the JSON closed" if row.finish_reason == "length" else str(e)
            res.plan, res.problems = res.plan, [f"plan is not valid JSON: {reason}"]
            continue
        res.plan, res.problems = plan, kind.check_plan(job.input, plan)
        res.drafts.append(plan)
