"""The user's own A/B test of the modes: a deterministic sample of their jobs, every mode run on it in
this process, on this machine, and what each mode delivered per hour and per item.

    sample_jobs ──► run_mode (one batch per mode, chunk by chunk as a worker runs it) ──► measure
                                                                                      └──► recommend

Every mode gets the same jobs, with their keys and per-job modes taken out: the copies are
measurements, not deliverables, and a job's own `mode` would overrule the mode under test.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.orchestrator import run_chunk
from pipeline.runtime import Runtime
from service.spec import Job, ParsedBatch, content_hash
from service.storage.models import Attempt, AttemptPath, Item, ItemStatus
from service.submission import chunks, submit_batch

FALLBACK_STAGE = "fallback"
"""The stages of the AR fallback are shown as one: it is the price of a failed first attempt."""
BATCHED_STAGES = frozenset({"plan", "refiner", "ar", "retry", "program"})
PER_ITEM_STAGES = frozenset({"validate", "retry_validate"})


def sample_jobs(parsed: ParsedBatch, n: int) -> ParsedBatch:
    """`n` jobs, the same ones for the same file whatever its order: the kinds take turns, and within a
    kind the jobs go by the hash of their content. Kept in file order, without keys or per-job modes."""
    by_kind: dict[str, list[Job]] = defaultdict(list)
    for job in parsed.jobs:
        by_kind[job.kind].append(job)
    for jobs in by_kind.values():
        jobs.sort(key=_job_digest)
    picked: list[Job] = []
    queues = [by_kind[k] for k in sorted(by_kind)]
    while len(picked) < min(n, len(parsed.jobs)):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    picked.sort(key=lambda j: j.line_no)
    jobs = [replace(j, key=None, params={k: v for k, v in j.params.items() if k != "mode"}) for j in picked]
    return ParsedBatch(jobs=jobs, content_sha256=content_hash(jobs))


def _job_digest(job: Job) -> str:
    blob = json.dumps({"kind": job.kind, "input": job.input, "params": job.params}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def run_mode(mode: str, sample: ParsedBatch, runtime: Runtime, sessions: sessionmaker[Session], *, name: str,
             on_item: Callable[[int, str], None] | None = None,
             on_rows: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Store the sample as a batch of `mode`, generate it here chunk by chunk, and measure it."""
    stored = submit_batch(sessions, sample, name=f"bench {mode}: {name}", mode=mode, model=runtime.settings.model,
                          params={"bench": True}, new_batch=True)
    parts = chunks(stored.new_item_ids, runtime.settings.chunk_size)
    started = time.perf_counter()
    for part in parts:
        run_chunk(part, sessions=sessions, runtime=runtime, on_item=on_item, on_rows=on_rows)
    seconds = time.perf_counter() - started
    with sessions() as session:
        return {"batch_id": stored.batch_id, **measure(session, parts, seconds)}


def measure(session: Session, parts: Sequence[Sequence[int]], seconds: float) -> dict[str, Any]:
    """What a mode delivered on these chunks of items in `seconds` of wall time."""
    ids = [i for part in parts for i in part]
    items = session.execute(select(Item.id, Item.kind, Item.status).where(Item.id.in_(ids))).all()
    attempts = session.execute(select(Attempt).where(Attempt.item_id.in_(ids))).scalars().all()
    n = len(items)
    done = sum(1 for _, _, status in items if status == ItemStatus.done.value)
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, kind, status in items:
        kinds[kind][0] += 1
        kinds[kind][1] += status == ItemStatus.done.value
    tokens = sum(a.generated_tokens for a in attempts)
    forwards = sum(a.forward_passes for a in attempts)
    per_1000 = 1000 / n if n else 0.0
    return {
        "items": n,
        "seconds": round(seconds, 2),
        "items_per_hour": round(n / seconds * 3600, 1) if seconds > 0 else 0.0,
        "validated_items_per_hour": round(done / seconds * 3600, 1) if seconds > 0 else 0.0,
        "pass_rate": round(done / n, 4) if n else 0.0,
        "pass_rate_by_kind": {k: round(d / t, 4) for k, (t, d) in sorted(kinds.items())},
        "errors": sum(1 for _, _, status in items if status == ItemStatus.error.value),
        "tokens_per_forward": round(tokens / forwards, 3) if forwards else 0.0,
        "stage_seconds": stage_seconds(attempts, parts),
        "attempts_by_path": dict(sorted(_count(a.path for a in attempts).items())),
        "tokens_per_1000_items": round(tokens * per_1000),
        "seconds_per_1000_items": round(seconds * per_1000, 1),
    }


def stage_seconds(attempts: Sequence[Attempt], parts: Sequence[Sequence[int]]) -> dict[str, float]:
    """Wall seconds per stage, summed over the chunks.

    A batched stage (the plans, the spans, the retries of a chunk) runs once for all its items, and
    each item's timings hold that whole run's time: a chunk counts its longest once. A per-item stage
    (validation) counts every item. A stage this module does not know is taken
    as batched when all the chunk's items carry the same time, as per-item otherwise.
    """
    chunk_of = {item_id: index for index, part in enumerate(parts) for item_id in part}
    values: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for a in attempts:
        for key, value in (a.timings or {}).items():
            if isinstance(value, float) and not key.endswith("_per_forward"):  # not counts or ratios
                values[(chunk_of[a.item_id], a.path, key)].append(value)
    totals: dict[str, float] = defaultdict(float)
    for (_, path, key), seen in values.items():
        batched = key in BATCHED_STAGES or (key not in PER_ITEM_STAGES and len(set(seen)) == 1)
        totals[FALLBACK_STAGE if path == AttemptPath.ar_fallback.value else key] += max(seen) if batched else sum(seen)
    return {stage: round(s, 2) for stage, s in sorted(totals.items())}


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return out


def recommend(results: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(mode, why): the most validated items per hour among the modes that pass as many items as the
    best one, to within one item of the sample (a smaller difference is not seen by a sample that size)."""
    if len(results) == 1:
        mode = next(iter(results))
        return mode, f"{mode} is the only mode measured"
    items = max(r["items"] for r in results.values()) or 1
    best_pass = max(r["pass_rate"] for r in results.values())
    as_good = [m for m, r in results.items() if r["pass_rate"] >= best_pass - 1 / items - 1e-9]
    pick = max(as_good, key=lambda m: (results[m]["validated_items_per_hour"], results[m]["pass_rate"],
                                       results[m]["items_per_hour"]))
    others = "; ".join(f"{m}: {r['validated_items_per_hour']:.0f} validated/hour, {r['pass_rate']:.0%} passed"
                       for m, r in results.items() if m != pick)
    r = results[pick]
    if best_pass == 0:
        why = (f"no mode passed any item of this sample, so none can be recommended on quality; {pick} is the "
               f"fastest ({r['items_per_hour']:.0f} items/hour; {others})")
    else:
        why = (f"{pick} delivers the most validated items per hour ({r['validated_items_per_hour']:.0f}, "
               f"{r['pass_rate']:.0%} passed) of the modes that pass as many items as the best, within one item "
               f"of this {items}-item sample ({others})")
    if items < 20:
        why += f"; {items} items is a small sample: rerun with a larger --sample before trusting it"
    return pick, why
