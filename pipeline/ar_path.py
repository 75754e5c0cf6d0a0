"""The full-AR path: each item's whole deliverable in one AR pass, all items of a chunk batched.

Used for mode=ar, and (from the pipeline issue on) as the fallback after a failed hybrid attempt.
"""

from __future__ import annotations

from typing import Sequence

from generators.ar import ARConfig, generate_ar
from generators.loading import LoadedModel
from generators.prompts import chat_ids
from pipeline.jobs import ItemJob
from pipeline.kinds import get_kind
from pipeline.settings import Settings
from pipeline.storage.queries import AttemptRecord
from pipeline.storage.types import utcnow
from pipeline.validation import all_passed, validate


def token_budget(job: ItemJob, settings: Settings) -> int:
    kind_budget = get_kind(job.kind).max_new_tokens
    return max(1, min(int(job.params.get("max_new_tokens", kind_budget)), settings.max_new_tokens))


def run_ar(jobs: Sequence[ItemJob], lm: LoadedModel, settings: Settings, path: str = "ar") -> list[AttemptRecord]:
    """Generate and validate every job by full AR. Returns one attempt per job, in order."""
    if not jobs:
        return []
    started = utcnow()
    tok = lm.tokenizer
    kinds = [get_kind(j.kind) for j in jobs]
    prompts = [k.ar_prompt(j.input) for k, j in zip(kinds, jobs)]
    prompt_ids = [chat_ids(tok, p.user, p.system, p.assistant_prefix) for p in prompts]
    temperature = [float(j.params.get("temperature", settings.temperature)) for j in jobs]
    # Rows with different temperatures cannot share one decode call; group them.
    groups: dict[float, list[int]] = {}
    for i, t in enumerate(temperature):
        groups.setdefault(t, []).append(i)
    rows = [None] * len(jobs)
    for temp, idx in groups.items():
        results = generate_ar(
            lm.model,
            [prompt_ids[i] for i in idx],
            eos_token_ids=lm.eos_token_ids,
            pad_token_id=lm.pad_token_id,
            config=ARConfig(max_new_tokens=settings.max_new_tokens, temperature=temp, top_p=settings.top_p),
            seeds=[int(jobs[i].params.get("seed", settings.seed)) for i in idx],
            max_new_tokens=[token_budget(jobs[i], settings) for i in idx],
        )
        for i, r in zip(idx, results):
            rows[i] = r
    generated_at = utcnow()
    gen_seconds = (generated_at - started).total_seconds()
    records = []
    for job, kind, prompt, ids, row in zip(jobs, kinds, prompts, prompt_ids, rows):
        raw = prompt.assistant_prefix + tok.decode(row.token_ids, skip_special_tokens=False)
        output = kind.finish_ar(raw, job.input)
        t_val = utcnow()
        reports = validate(kind, output, job.input)
        finished = utcnow()
        records.append(
            AttemptRecord(
                path=path,
                passed=all_passed(reports),
                output=output,
                reports=[r.as_dict() for r in reports],
                models={"ar": lm.name},
                timings={
                    "generate": round(row.wall_s, 4),
                    "generate_batch": round(gen_seconds, 4),
                    "validate": round((finished - t_val).total_seconds(), 4),
                    "finish_reason": row.finish_reason,
                },
                prompt_tokens=len(ids),
                generated_tokens=row.generated_tokens,
                forward_passes=row.forward_passes,
                started_at=started,
                finished_at=finished,
            )
        )
    return records
