"""The whole pipeline, plain vs ar vs hybrid, on the same jobs in the same run, on the default models.

    python benchmarks/pipeline.py [--quick] [--mbpp N] [--hidden N] [--modes plain,ar,hybrid] [--png PATH]

Jobs, per mode:
- the examples/ batches of each kind;
- MBPP tasks with their tests given (benchmarks/mbpp.py `visible_jobs`);
- a code set in the held-out shape (`hidden_jobs`): a signature and a docstring with the task text
  and one example, no tests given; every one of the task's tests scores the output afterwards.
Each mode runs them through the real orchestrator on a temporary SQLite database, chunk by chunk, as a
worker would. `plain` is one chat prompt per item (the user's alternative to this project). Reported per
mode: validated items per hour, pass rates (first attempt, final, per kind), fallback rate, MBPP pass
rate, hidden-test pass@1, tokens per forward, seconds per stage, generative perplexity under the base
AR model. Writes a PNG comparing the modes and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit_json, machine, pipeline_run, print_table  # noqa: E402
from benchmarks.mbpp import hidden_jobs, hidden_pass, mbpp_tasks, visible_jobs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODES = ("plain", "ar", "hybrid")


@dataclass(frozen=True)
class Job:
    """One submitted line and the set it belongs to: "examples", "mbpp" (tests given) or "hidden"
    (scored afterwards by the task's tests, which the pipeline never sees)."""

    line: dict
    group: str
    task: dict | None = None


def build_jobs(n_mbpp: int, n_hidden: int, quick: bool) -> list[Job]:
    jobs = []
    for path in sorted((REPO / "examples").glob("*.jsonl")):
        lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
        for line in lines[:1] if quick else lines:
            line.pop("key", None)  # the modes store the same jobs in separate databases anyway
            jobs.append(Job(line, "examples"))
    jobs += [Job(line, "mbpp") for line in visible_jobs(mbpp_tasks(n_mbpp))]
    for line in hidden_jobs(mbpp_tasks(n_hidden, offset=7)):  # other tasks than the visible ones
        task = line.pop("hidden")
        jobs.append(Job(line, "hidden", task))
    return jobs


def run_mode(mode: str, jobs: list[Job], base_settings) -> dict:
    with pipeline_run(mode, [j.line for j in jobs], base_settings) as (sessions, ids, seconds, runtime):
        return {**collect(sessions, ids, seconds, runtime, jobs),
                **stage_seconds(sessions, ids, runtime.settings.chunk_size)}


BATCH_STAGES = ("plan", "refiner", "ar", "retry", "program")
"""Attempt timings measured per batch call (every item of a chunk carries its chunk's value)."""
ITEM_STAGES = ("validate", "retry_validate")
"""Attempt timings measured per item."""


def stage_seconds(sessions, ids, chunk_size: int) -> dict:
    """Seconds per stage over the run (a batch stage counted once per chunk), and the planner's tokens
    per forward, from the stored attempts."""
    from sqlalchemy import select

    from service.storage.models import Attempt
    from service.submission import chunks

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


def collect(sessions, ids, seconds, runtime, jobs: list[Job]) -> dict:
    from sqlalchemy import select

    from service.storage.models import Attempt, Item

    with sessions() as s:
        items = s.execute(select(Item).where(Item.id.in_(ids)).order_by(Item.id)).scalars().all()
        attempts = s.execute(select(Attempt).where(Attempt.item_id.in_(ids)).order_by(Attempt.id)).scalars().all()
    by_item: dict[int, list] = {}
    for a in attempts:
        by_item.setdefault(a.item_id, []).append(a)
    done = [i for i in items if i.status == "done"]
    first = [by_item[i.id][0] for i in items if i.id in by_item]
    fallback = [i for i in items if len(by_item.get(i.id, [])) > 1]
    job_of = {i.id: jobs[i.line_no - 1] for i in items}  # line numbers count from 1
    mbpp = [i for i in items if job_of[i.id].group == "mbpp"]
    mbpp_pass = [i for i in mbpp if _sandbox_passed(by_item.get(i.id, []))]
    hidden = [i for i in items if job_of[i.id].group == "hidden"]
    # pass@1 as the user sees it: the delivered output (a failed item delivers nothing)
    hidden_passed = [i for i in hidden if i.status == "done" and hidden_pass(i.output or "", job_of[i.id].task)]
    kinds = sorted({i.kind for i in items})
    tokens = sum(a.generated_tokens for a in attempts)
    forwards = sum(a.forward_passes for a in attempts)
    return {
        "items": len(items), "seconds": round(seconds, 1),
        "validated_items_per_hour": round(len(done) / seconds * 3600, 1) if seconds else 0.0,
        "first_pass_rate": round(sum(a.passed for a in first) / max(1, len(first)), 3),
        "final_pass_rate": round(len(done) / max(1, len(items)), 3),
        "fallback_rate": round(len(fallback) / max(1, len(items)), 3),
        "pass_rate_by_kind": {k: round(sum(i.status == "done" for i in items if i.kind == k)
                                       / max(1, sum(i.kind == k for i in items)), 3) for k in kinds},
        "mbpp_pass_rate": round(len(mbpp_pass) / max(1, len(mbpp)), 3), "mbpp_items": len(mbpp),
        "hidden_test_pass_rate": round(len(hidden_passed) / max(1, len(hidden)), 3), "hidden_items": len(hidden),
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

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    modes = list(results)
    colors = {"plain": "#bbb", "ar": "#888", "hybrid": "#2a7"}
    axes[0].bar(modes, [results[m]["validated_items_per_hour"] for m in modes], color=[colors.get(m, "#46c") for m in modes])
    axes[0].set_title("validated items per hour")
    metrics = ["first_pass_rate", "final_pass_rate", "fallback_rate", "mbpp_pass_rate", "hidden_test_pass_rate"]
    width = 0.8 / len(modes)
    for k, m in enumerate(modes):
        axes[1].bar([i + k * width for i in range(len(metrics))], [results[m][x] for x in metrics], width, label=m,
                    color=colors.get(m, "#46c"))
    axes[1].set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(metrics))],
                       [x.replace("_rate", "").replace("_test", "") for x in metrics])
    axes[1].set_ylim(0, 1)
    axes[1].legend()
    axes[1].set_title("rates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one example per kind, 3 MBPP tasks and 3 hidden-shape tasks")
    ap.add_argument("--mbpp", type=int, default=None, help="MBPP tasks with their tests given (default 12, quick 3)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden-test code tasks (default 12, quick 3)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    ap.add_argument("--png", type=Path, default=REPO / "docs" / "results" / "pipeline.png")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        ap.error(f"--modes: expected a comma-separated list of {', '.join(MODES)}, got {args.modes!r}")
    from pipeline.settings import Settings

    settings = Settings.from_env()
    default_n = 3 if args.quick else 12
    jobs = build_jobs(args.mbpp if args.mbpp is not None else default_n,
                      args.hidden if args.hidden is not None else default_n, args.quick)
    results = {mode: run_mode(mode, jobs, settings) for mode in modes}
    print(f"machine: {machine()}; {len(jobs)} jobs per mode")
    keys = ["items", "seconds", "validated_items_per_hour", "first_pass_rate", "final_pass_rate", "fallback_rate",
            "mbpp_pass_rate", "hidden_test_pass_rate", "rescued_by_retries", "tokens_per_forward",
            "plan_tokens_per_forward", "gen_ppl"]
    print_table("pipeline: the modes on the same jobs", ["metric", *modes],
                [(k, *(results[m][k] for m in modes)) for k in keys])
    kinds = sorted({k for r in results.values() for k in r["pass_rate_by_kind"]})
    print_table("final pass rate per kind", ["kind", *modes],
                [(k, *(results[m]["pass_rate_by_kind"].get(k, 0.0) for m in modes)) for k in kinds])
    stage_names = sorted({k for r in results.values() for k in r["stage_seconds"]})
    print_table("seconds per stage (a batch stage once per chunk)", ["stage", *modes],
                [(k, *(results[m]["stage_seconds"].get(k, 0.0) for m in modes)) for k in stage_names])
    for mode in modes:
        print_table(f"{mode} attempts: what failed", ["job", "path", "passed", "retry passed", "failed validators"],
                    results[mode]["attempts"])
    args.png.parent.mkdir(parents=True, exist_ok=True)
    plot(results, args.png)
    print(f"plot: {args.png}")
    summary = {"modes": modes, "quick": args.quick, "jobs": len(jobs)}
    for m in modes:
        r = results[m]
        summary |= {f"{m}_items_per_hour": r["validated_items_per_hour"], f"{m}_pass_rate": r["final_pass_rate"],
                    f"{m}_first_pass_rate": r["first_pass_rate"], f"mbpp_pass_rate_{m}": r["mbpp_pass_rate"],
                    f"hidden_test_pass_rate_{m}": r["hidden_test_pass_rate"], f"gen_ppl_{m}": r["gen_ppl"],
                    f"pass_rate_by_kind_{m}": r["pass_rate_by_kind"], f"tokens_per_forward_{m}": r["tokens_per_forward"]}
    for a, b in (("hybrid", "plain"), ("hybrid", "ar")):
        if a in results and b in results and results[b]["validated_items_per_hour"]:
            summary[f"{a}_vs_{b}_items_per_hour"] = round(results[a]["validated_items_per_hour"]
                                                          / results[b]["validated_items_per_hour"], 3)
    summary |= {"plan_tokens_per_forward": {m: r["plan_tokens_per_forward"] for m, r in results.items()},
                "stage_seconds": {m: r["stage_seconds"] for m, r in results.items()}}
    emit_json(summary)


if __name__ == "__main__":
    main()
