"""The whole pipeline, hybrid vs AR, on the same jobs in the same run, on the default models.

    python benchmarks/pipeline.py [--quick] [--mbpp N] [--png PATH]

Jobs: the examples/ batches of each kind, plus a deterministic subset of MBPP test-split tasks
(../shared/data/mbpp, with their tests). Each mode runs them through the real orchestrator on a
temporary SQLite database, chunk by chunk, as a worker would. Reported per mode:
validated items per hour, first-pass (hybrid attempt) validation rate, final pass rate, fallback
rate, generative perplexity of the deliverables under the base AR model, MBPP test pass rate.
Writes a PNG comparing the modes and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit_json, machine, print_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MBPP = REPO.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"


def build_jobs(n_mbpp: int, quick: bool) -> tuple[list[dict], int]:
    jobs = []
    for path in sorted((REPO / "examples").glob("*.jsonl")):
        lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        jobs += lines[:1] if quick else lines
    tasks = [json.loads(l) for l in MBPP.read_text().splitlines()] if MBPP.exists() else []
    tasks = [t for t in tasks if 11 <= t["task_id"] <= 510 and t["task_id"] % 25 == 0][:n_mbpp]  # deterministic
    n_examples = len(jobs)
    for t in tasks:
        jobs.append({"kind": "code", "key": f"mbpp-{t['task_id']}",
                     "input": {"prompt": t["text"], "tests": t["test_list"], "test_setup": t.get("test_setup_code", "")}})
    for j in jobs:
        j.pop("key", None)  # the two modes store the same jobs in separate databases anyway
    return jobs, n_examples


def run_mode(mode: str, jobs: list[dict], base_settings, n_examples: int) -> dict:
    from migrations import runner
    from pipeline.orchestrator import run_chunk
    from pipeline.runtime import Runtime
    from pipeline.spec import parse_jsonl
    from pipeline.storage.db import session_factory
    from pipeline.submission import chunks, submit_batch

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite"
        runner.upgrade(url)
        settings = base_settings.replace(database_url=url, data_dir=Path(tmp))
        runtime = Runtime(settings)
        runtime.planner, runtime.refiner if mode == "hybrid" else None  # load before timing
        sessions = session_factory(url)
        ids = submit_batch(sessions, parse_jsonl("\n".join(json.dumps(j) for j in jobs)), name=mode, mode=mode).new_item_ids
        t0 = time.perf_counter()
        for chunk in chunks(ids, settings.chunk_size):
            run_chunk(chunk, sessions=sessions, runtime=runtime)
        seconds = time.perf_counter() - t0
        return {**collect(sessions, ids, seconds, runtime, n_examples),
                **stage_seconds(sessions, ids, settings.chunk_size)}


BATCH_STAGES = ("plan", "refiner", "ar", "retry")
"""Attempt timings measured per batch call (every item of a chunk carries its chunk's value)."""
ITEM_STAGES = ("validate", "retry_validate")
"""Attempt timings measured per item."""


def stage_seconds(sessions, ids, chunk_size: int) -> dict:
    """Seconds per stage over the run (a batch stage counted once per chunk), and the planner's tokens
    per forward, from the stored attempts."""
    from sqlalchemy import select

    from pipeline.storage.models import Attempt
    from pipeline.submission import chunks

    with sessions() as s:
        attempts = s.execute(select(Attempt).where(Attempt.item_id.in_(ids)).order_by(Attempt.id)).scalars().all()
    chunk_of = {i: n for n, chunk in enumerate(chunks(ids, chunk_size)) for i in chunk}
    stages: dict[str, float] = {}
    per_chunk: dict[tuple[str, str, int], float] = {}
    plan_tokens = plan_forwards = 0
    for a in attempts:
        t = a.timings or {}
        prefix = "fallback_" if a.path == "ar_fallback" else ""
        for key in BATCH_STAGES:
            if key in t:
                slot = (prefix + key, a.path, chunk_of[a.item_id])
                per_chunk[slot] = max(per_chunk.get(slot, 0.0), float(t[key]))
        for key in ITEM_STAGES:
            if key in t:
                stages[prefix + key] = stages.get(prefix + key, 0.0) + float(t[key])
        if a.path != "ar_fallback":
            plan_tokens += int(t.get("plan_tokens", 0))
            plan_forwards += int(t.get("plan_forwards", 0))
    for (key, _, _), value in per_chunk.items():
        stages[key] = stages.get(key, 0.0) + value
    return {"stage_seconds": {k: round(v, 2) for k, v in sorted(stages.items())},
            "plan_tokens_per_forward": round(plan_tokens / plan_forwards, 3) if plan_forwards else 0.0}


def collect(sessions, ids, seconds, runtime, n_examples: int) -> dict:
    from sqlalchemy import select

    from pipeline.storage.models import Attempt, Item

    with sessions() as s:
        items = s.execute(select(Item).where(Item.id.in_(ids)).order_by(Item.id)).scalars().all()
        attempts = s.execute(select(Attempt).where(Attempt.item_id.in_(ids)).order_by(Attempt.id)).scalars().all()
    by_item: dict[int, list] = {}
    for a in attempts:
        by_item.setdefault(a.item_id, []).append(a)
    done = [i for i in items if i.status == "done"]
    first = [by_item[i.id][0] for i in items if i.id in by_item]
    fallback = [i for i in items if len(by_item.get(i.id, [])) > 1]
    mbpp = [i for i in items if i.line_no > n_examples]  # MBPP jobs come after the examples
    mbpp_pass = [i for i in mbpp if _sandbox_passed(by_item.get(i.id, []))]
    tokens = sum(a.generated_tokens for a in attempts)
    forwards = sum(a.forward_passes for a in attempts)
    return {
        "items": len(items), "seconds": round(seconds, 1),
        "validated_items_per_hour": round(len(done) / seconds * 3600, 1) if seconds else 0.0,
        "first_pass_rate": round(sum(a.passed for a in first) / max(1, len(first)), 3),
        "final_pass_rate": round(len(done) / max(1, len(items)), 3),
        "fallback_rate": round(len(fallback) / max(1, len(items)), 3),
        "mbpp_pass_rate": round(len(mbpp_pass) / max(1, len(mbpp)), 3), "mbpp_items": len(mbpp),
        "rescued_by_retries": sum(1 for a in attempts if a.passed and (a.timings or {}).get("retry_passed_version")),
        "tokens_per_forward": round(tokens / max(1, forwards), 3),
        "gen_ppl": round(gen_ppl(runtime.planner, [i.output or "" for i in items]), 2),
        "attempts": [attempt_row(i, a) for i in items for a in by_item.get(i.id, [])],
    }


def attempt_row(item, attempt) -> tuple:
    """(job, path, passed, retry, what failed) for the "why" table: the failing validators (the retries'
    own summary aside) and the first one's message."""
    failed = [r for r in attempt.reports if not r["passed"] and r["validator"] != "retries"]
    why = "; ".join(r["validator"] for r in failed)
    if failed:
        why += f" ({failed[0]['message'][:70]})"
    return (f"{item.kind} line {item.line_no}", attempt.path, attempt.passed, retry_note(attempt), why)


def retry_note(attempt) -> str:
    """What the sampled retries of an attempt did (pipeline/retries.py): '2 of 3', 'none of 3', or ''."""
    t = attempt.timings or {}
    if not t.get("retry_samples"):
        return ""
    passed = t.get("retry_passed_version")
    return f"{passed} of {t['retry_samples']}" if passed else f"none of {t['retry_samples']}"


def _sandbox_passed(attempts) -> bool:
    if not attempts:
        return False
    for r in attempts[-1].reports:
        if r["validator"] == "sandbox_tests":
            return bool(r["passed"])
    return False


def gen_ppl(lm, texts: list[str]) -> float:
    """Perplexity of the deliverables under the base AR model (as replies to a neutral prompt)."""
    import torch

    from generators.prompts import chat_ids

    tok = lm.tokenizer
    nll, count = 0.0, 0
    prefix = chat_ids(tok, "Write the requested text.")
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"][:384]
        if len(ids) < 2:
            continue
        seq = torch.tensor([prefix + ids])
        with torch.inference_mode():
            logits = lm.model(seq).logits[0, len(prefix) - 1:-1].float()
        nll += torch.nn.functional.cross_entropy(logits, torch.tensor(ids), reduction="sum").item()
        count += len(ids)
    return math.exp(nll / max(1, count))


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    modes = list(results)
    axes[0].bar(modes, [results[m]["validated_items_per_hour"] for m in modes], color=["#888", "#2a7"])
    axes[0].set_title("validated items per hour")
    metrics = ["first_pass_rate", "final_pass_rate", "fallback_rate", "mbpp_pass_rate"]
    width = 0.38
    for k, m in enumerate(modes):
        axes[1].bar([i + k * width for i in range(len(metrics))], [results[m][x] for x in metrics], width, label=m)
    axes[1].set_xticks([i + width / 2 for i in range(len(metrics))], [x.replace("_rate", "") for x in metrics])
    axes[1].set_ylim(0, 1)
    axes[1].legend()
    axes[1].set_title("rates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one example per kind and 3 MBPP tasks")
    ap.add_argument("--mbpp", type=int, default=None, help="number of MBPP tasks (default 12, quick 3)")
    ap.add_argument("--png", type=Path, default=REPO / "docs" / "results" / "pipeline.png")
    args = ap.parse_args()
    from pipeline.settings import Settings

    settings = Settings.from_env()
    jobs, n_examples = build_jobs(args.mbpp if args.mbpp is not None else (3 if args.quick else 12), args.quick)
    results = {mode: run_mode(mode, jobs, settings, n_examples) for mode in ("ar", "hybrid")}
    print(f"machine: {machine()}; {len(jobs)} jobs per mode")
    keys = ["items", "seconds", "validated_items_per_hour", "first_pass_rate", "final_pass_rate", "fallback_rate",
            "mbpp_pass_rate", "rescued_by_retries", "tokens_per_forward", "plan_tokens_per_forward", "gen_ppl"]
    print_table("pipeline: AR vs hybrid on the same jobs", ["metric", "ar", "hybrid"],
                [(k, results["ar"][k], results["hybrid"][k]) for k in keys])
    stage_names = sorted({k for r in results.values() for k in r["stage_seconds"]})
    print_table("seconds per stage (a batch stage once per chunk)", ["stage", "ar", "hybrid"],
                [(k, results["ar"]["stage_seconds"].get(k, 0.0), results["hybrid"]["stage_seconds"].get(k, 0.0))
                 for k in stage_names])
    for mode in ("ar", "hybrid"):
        print_table(f"{mode} attempts: what failed", ["job", "path", "passed", "retry passed", "failed validators"],
                    results[mode]["attempts"])
    args.png.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.png)
    print(f"plot: {args.png}")
    emit_json({
        "ar_items_per_hour": results["ar"]["validated_items_per_hour"],
        "hybrid_items_per_hour": results["hybrid"]["validated_items_per_hour"],
        "hybrid_first_pass_rate": results["hybrid"]["first_pass_rate"],
        "hybrid_final_pass_rate": results["hybrid"]["final_pass_rate"],
        "ar_pass_rate": results["ar"]["final_pass_rate"],
        "mbpp_pass_rate_hybrid": results["hybrid"]["mbpp_pass_rate"],
        "mbpp_pass_rate_ar": results["ar"]["mbpp_pass_rate"],
        "gen_ppl_ar": results["ar"]["gen_ppl"], "gen_ppl_hybrid": results["hybrid"]["gen_ppl"],
        "plan_tokens_per_forward": {m: r["plan_tokens_per_forward"] for m, r in results.items()},
        "stage_seconds": {m: r["stage_seconds"] for m, r in results.items()},
        "quick": args.quick,
    })


if __name__ == "__main__":
    main()
