"""Outputs for the labelled defect set: every attempt of every mode on varied inputs, from the default model.

    python benchmarks/defect_set/generate.py [--seeds 1,2] [--modes plain,ar,hybrid] [--mbpp 20] [--hidden 20]
                                             [--articles N] [--products N] [--out benchmarks/defect_set/outputs.jsonl]
                                             [--new-items-only]

Inputs: benchmarks/defect_set/inputs.jsonl (articles and products), MBPP tasks with their tests and
MBPP tasks in the held-out shape (benchmarks/mbpp.py). Each (seed, mode) runs them through the real
orchestrator (benchmarks/common.py `pipeline_run`); every stored attempt becomes one line of
outputs.jsonl: the hybrid attempt and its fallback are two outputs, since a reviewer sees both.
Appends; a line whose output_id is already in the file is not written again, so a run can be resumed.
Ends with one JSON line (outputs written, per kind and path).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.common import emit_json, pipeline_run, print_table  # noqa: E402
from benchmarks.mbpp import hidden_jobs, mbpp_tasks, visible_jobs  # noqa: E402

HERE = Path(__file__).resolve().parent


def job_lines(n_articles: int, n_products: int, n_mbpp: int, n_hidden: int) -> list[dict]:
    lines = [json.loads(line) for line in (HERE / "inputs.jsonl").read_text().splitlines() if line.strip()]
    articles = [j for j in lines if j["kind"] == "article"][:n_articles]
    products = [j for j in lines if j["kind"] == "product"][:n_products]
    tasks = mbpp_tasks(n_mbpp)
    code = [dict(j, key=f"defect-mbpp-{t['task_id']}") for j, t in zip(visible_jobs(tasks), tasks)]
    for j in hidden_jobs(mbpp_tasks(n_hidden, offset=7)):
        task = j.pop("hidden")
        code.append(dict(j, key=f"defect-hidden-{task['task_id']}"))
    return articles + products + code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--modes", default="plain,ar,hybrid")
    ap.add_argument("--articles", type=int, default=1000)
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--mbpp", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=20)
    ap.add_argument("--out", type=Path, default=HERE / "outputs.jsonl")
    ap.add_argument("--new-items-only", action="store_true",
                    help="run only the items that have no output in --out yet (to grow the set with new inputs)")
    args = ap.parse_args()
    from pipeline.settings import Settings
    from service.storage.models import Attempt, Item

    lines = job_lines(args.articles, args.products, args.mbpp, args.hidden)
    seen = set()
    if args.out.exists():
        seen = {json.loads(line)["output_id"] for line in args.out.read_text().splitlines() if line.strip()}
    if args.new_items_only:
        done_items = {output_id.split(":")[0] for output_id in seen}
        lines = [j for j in lines if j["key"] not in done_items]
        print(f"{len(lines)} new items")
    written: Counter = Counter()
    base = Settings.from_env()
    for seed in [int(s) for s in args.seeds.split(",")]:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            with pipeline_run(mode, lines, base.replace(seed=seed), name=f"defects-{mode}-s{seed}") as (sessions, ids, _, _):
                with sessions() as s:
                    items = {i.id: i for i in s.query(Item).filter(Item.id.in_(ids))}
                    attempts = s.query(Attempt).filter(Attempt.item_id.in_(ids)).order_by(Attempt.id).all()
                    rows = [_row(items[a.item_id], a, lines, mode, seed) for a in attempts]
            with args.out.open("a") as f:
                for row in rows:
                    if row["output_id"] in seen or row["output"] is None:
                        continue
                    seen.add(row["output_id"])
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    written[(row["kind"], row["path"])] += 1
    print_table("outputs written", ["kind", "path", "outputs"], [(k, p, n) for (k, p), n in sorted(written.items())])
    emit_json({"written": sum(written.values()), "by_kind_path": {f"{k}/{p}": n for (k, p), n in written.items()},
               "file_outputs": len(seen)})


def _row(item, attempt, lines: list[dict], mode: str, seed: int) -> dict:
    job = lines[item.line_no - 1]  # line numbers count from 1
    return {"output_id": f"{job['key']}:{mode}:{attempt.path}:s{seed}", "item": job["key"], "kind": item.kind,
            "mode": mode, "path": attempt.path, "seed": seed, "input": job["input"], "output": attempt.output,
            "passed": attempt.passed,
            "failed_validators": [r["validator"] for r in attempt.reports if not r["passed"]]}


if __name__ == "__main__":
    main()
