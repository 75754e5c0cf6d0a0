"""`plain` mode: the same model, asked plainly; one chat prompt per item for the whole deliverable.

    job ──► kind.plain_span (one prompt) ──► one batched AR decode ──► kind.parse_plain ──► validate
      failed ──► N sampled replies to the same prompt, one batch (HYBRIDGEN_RETRY_SAMPLES) ──► first pass wins

It is what a user runs without this project, and the yardstick of the planned modes (DESIGN.md §1): no
plan, no refiner, no fallback; the kind's validators (with no plan, an article's structure is checked
against the user's headings or the number of sections asked for) and the same retry budget as the
other modes. How the reply was read is a `plain_reply` report, so an unreadable reply says why.
"""

from __future__ import annotations

from typing import Sequence

from pipeline.jobs import ItemJob
from pipeline.kinds import get_kind
from pipeline.paths import Drafted, to_attempt
from pipeline.retries import retry_failed
from pipeline.runtime import Runtime
from pipeline.spans import ar_generator, write_spans
from service.storage.models import AttemptPath
from service.storage.queries import AttemptRecord
from service.storage.types import utcnow
from validators.base import Report


def plain_drafts(jobs: Sequence[ItemJob], runtime: Runtime, *, temperature: float = 0.0, versions: int = 1,
                 seed_salt: int = 0) -> dict[int, list[Drafted]]:
    """`versions` replies per job (each its own seed when sampling), all of them in one batched AR decode."""
    settings = runtime.settings
    spans = {j.item_id: get_kind(j.kind).plain_span(j.input, settings.max_new_tokens) for j in jobs}
    members = [(j, v) for j in jobs for v in range(versions)]
    seeds = [int(j.params.get("seed", settings.seed)) * 31 + 1009 * (v + seed_salt) for j, v in members]
    batch = write_spans([spans[j.item_id] for j, _ in members], tokenizer=runtime.planner.tokenizer,
                        generate=ar_generator(runtime.planner, temperature=temperature, top_p=settings.top_p),
                        seeds=seeds)
    out: dict[int, list[Drafted]] = {j.item_id: [] for j in jobs}
    for (job, _), text in zip(members, batch.texts):
        reply = get_kind(job.kind).parse_plain(job.input, text.text)
        tpf = round(text.generated_tokens / text.forward_passes, 4) if text.forward_passes else 0.0
        timings = {"plain": round(batch.seconds, 4), "plain_tokens": text.generated_tokens,
                   "plain_forwards": text.forward_passes, "plain_tokens_per_forward": tpf,
                   "span_finish": [text.finish_reason]}
        read = Report("plain_reply", reply.readable, 1.0 if reply.readable else 0.0, reply.note)
        out[job.item_id].append(Drafted(reply.output, None, text.generated_tokens, text.forward_passes, timings, [],
                                        text.prompt_tokens, reports=[read]))
    return out


def run_plain(jobs: Sequence[ItemJob], runtime: Runtime) -> dict[int, AttemptRecord]:
    """One `plain` attempt per job: the greedy reply, or the first sampled retry that passes."""
    started = utcnow()
    first = plain_drafts(jobs, runtime)
    models = {"ar": runtime.planner.name}
    attempts = {j.item_id: to_attempt(j, AttemptPath.plain.value, first[j.item_id][0], runtime, started, models, [])
                for j in jobs}

    def redraft(group: Sequence[ItemJob], n: int) -> dict[int, list[Drafted]]:
        return plain_drafts(group, runtime, temperature=runtime.settings.retry_temperature, versions=n, seed_salt=1)

    return retry_failed(jobs, attempts, runtime, redraft=redraft)
