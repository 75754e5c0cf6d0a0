"""Do the code plan's step comments help? MBPP pass rate with and without them, in `ar` mode.

    python benchmarks/code_steps.py [--tasks N] [--retries]

Jobs: a deterministic sample of N MBPP test-split tasks (../shared/data/mbpp: the task text as the
prompt, with its tests). Each variant runs them through the real orchestrator in `ar` mode (the same
plan and AR-written bodies as hybrid's draft-and-verify, and quicker), once with the plan's steps as
comments above the body and once without. Reported: first-attempt pass rate (greedy body), final pass
rate (after the sampled retries, with --retries), how many plans had a step left after the prose filter,
plan tokens per item, seconds. The default model unless HYBRIDGEN_MODEL says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import emit_json, machine, print_table  # noqa: E402

MBPP = REPO.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"


def mbpp_jobs(n: int) -> list[dict]:
    """n tasks spread over the test split (ids 11-510), every (500 // n)th."""
    tasks = [json.loads(line) for line in MBPP.read_text().splitlines()]
    step = max(1, 500 // n)
    picked = [t for t in tasks if 11 <= t["task_id"] <= 510 and (t["task_id"] - 11) % step == 0][:n]
    return [{"kind": "code", "input": {"prompt": t["text"], "tests": t["test_list"],
                                       "test_setup": t.get("test_setup_code", "")}} for t in picked]


def run_variant(steps: bool, jobs: list[dict], settings) -> dict:
    from migrations import runner
    from pipeline import kinds
    from pipeline.orchestrator import run_chunk
    from pipeline.runtime import Runtime
    from service.spec import parse_jsonl
    from service.storage.db import session_factory
    from service.storage.models import Attempt
    from service.submission import chunks, submit_batch

    original = kinds.KINDS["code"]
    kinds.KINDS["code"] = dataclasses.replace(original, steps=steps)  # this variant only; restored below
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite"
            runner.upgrade(url)
            runtime = Runtime(settings.replace(database_url=url, data_dir=Path(tmp)))
            runtime.planner  # load before timing
            sessions = session_factory(url)
            parsed = parse_jsonl("\n".join(json.dumps(j) for j in jobs))
            ids = submit_batch(sessions, parsed, name=f"steps={steps}", mode="ar").new_item_ids
            t0 = time.perf_counter()
            for chunk in chunks(ids, runtime.settings.chunk_size):
                run_chunk(chunk, sessions=sessions, runtime=runtime)
            seconds = time.perf_counter() - t0
            with sessions() as s:
                attempts = s.query(Attempt).filter(Attempt.item_id.in_(ids)).all()
    finally:
        kinds.KINDS["code"] = original
    first = sum(_first_passed(a) for a in attempts)
    final = sum(a.passed for a in attempts)
    steps_used = sum(bool(a.plan and a.plan.get("steps")) for a in attempts) if steps else 0
    plan_tokens = sum((a.timings or {}).get("plan_tokens", 0) for a in attempts)
    return {"steps": steps, "tasks": len(ids), "first_pass": first, "final_pass": final,
            "first_pass_rate": round(first / max(1, len(ids)), 3),
            "final_pass_rate": round(final / max(1, len(ids)), 3),
            "items_with_steps": steps_used, "plan_tokens_per_item": round(plan_tokens / max(1, len(ids)), 1),
            "seconds": round(seconds, 1)}


def _first_passed(attempt) -> bool:
    """Passed before any sampled retry (the greedy body)."""
    return attempt.passed and not (attempt.timings or {}).get("retry_samples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=40, help="MBPP tasks (default 40)")
    ap.add_argument("--retries", action="store_true", help="keep the sampled retries (HYBRIDGEN_RETRY_SAMPLES)")
    args = ap.parse_args()
    from pipeline.settings import Settings

    settings = Settings.from_env()
    if not args.retries:
        settings = settings.replace(retry_samples="")
    jobs = mbpp_jobs(args.tasks)
    results = [run_variant(steps, jobs, settings) for steps in (True, False)]
    print(f"MBPP, ar mode, {settings.model}, {machine()}")
    print_table("code plan steps", list(results[0]), [list(r.values()) for r in results])
    with_steps, without = results
    emit_json({"tasks": len(jobs), "retries": args.retries, "model": settings.model,
               "pass_rate_with_steps": with_steps["final_pass_rate"],
               "pass_rate_without_steps": without["final_pass_rate"],
               "first_pass_rate_with_steps": with_steps["first_pass_rate"],
               "first_pass_rate_without_steps": without["first_pass_rate"],
               "plans_with_steps": with_steps["items_with_steps"],
               "plan_tokens_with_steps": with_steps["plan_tokens_per_item"],
               "plan_tokens_without_steps": without["plan_tokens_per_item"],
               "seconds_with_steps": with_steps["seconds"], "seconds_without_steps": without["seconds"]})


if __name__ == "__main__":
    main()
