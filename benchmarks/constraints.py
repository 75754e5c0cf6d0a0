"""Plan-constraint set-up per distinct code job: time and resident memory, with the real tokenizer.

    python benchmarks/constraints.py [--jobs 50] [--old-jobs 6]

Two designs, measured in one process with SmolLM2-135M's tokenizer (49k tokens):
- per-job regex (the design before): the job's own signature inside the plan's JSON-schema regex,
  so every distinct job compiles a new outlines-core Index;
- forced prefix (now): the signature is written into the reply as a prefix and the rest decodes
  under one of three fixed regexes (pipeline/kinds/code.py), so after the first jobs the set-up is
  a cache hit.
The per-job regex runs on fewer jobs (--old-jobs): each of its indexes stays resident, as it did
in the old process-global cache.

Ends with one JSON line: setup_ms_per_job (median after warm-up), rss_growth_mb_per_100_jobs, and
the same for the per-job design.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import emit_json, print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50, help="distinct code jobs for the forced-prefix design")
    ap.add_argument("--old-jobs", type=int, default=6, help="distinct code jobs for the per-job-regex design")
    args = ap.parse_args()
    if args.jobs < 4 or args.old_jobs < 2:
        raise SystemExit("constraints benchmark: --jobs must be >= 4 and --old-jobs >= 2 (warm-up plus measured jobs)")

    import psutil

    from generators.constrained import regex_index, schema_regex
    from generators.loading import load_model
    from pipeline.kinds import get_kind
    from pipeline.kinds.code import PLAN_REST
    from validators.code_task import given_signature
    from pipeline.planner import plan_regex
    from pipeline.settings import Settings
    from benchmarks.distinct_jobs import distinct_code_jobs

    tokenizer = load_model("smollm2-135m-instruct", cache_dir=Settings().cache_dir).tokenizer
    kind = get_kind("code")
    process = psutil.Process()

    def per_job_regex(job: dict) -> str:
        """The plan regex as it was: the job's signature as an enum inside the schema."""
        signature = {"type": "string", "enum": [given_signature(job)]}
        return schema_regex({"type": "object", "properties": {"signature": signature, **PLAN_REST},
                             "required": ["signature", *PLAN_REST], "additionalProperties": False})

    def measure(jobs: list[dict], regex_of, warm: int) -> dict[str, float]:
        times, rss = [], []
        for job in jobs:
            t0 = time.perf_counter()
            regex_index(tokenizer, regex_of(job))
            times.append((time.perf_counter() - t0) * 1000)
            rss.append(process.memory_info().rss / 2**20)
        measured = len(jobs) - warm
        return {"setup_ms": round(statistics.median(times[warm:]), 2), "first_ms": round(times[0], 1),
                "rss_growth_mb_per_100": round((rss[-1] - rss[warm - 1]) / measured * 100, 1),
                "rss_after_mb": round(rss[-1], 1), "jobs": len(jobs)}

    new = measure(distinct_code_jobs(args.jobs), lambda job: plan_regex(kind.plan_request(job)), warm=3)
    with_signature = [{"prompt": f"def solve_{i}(values, limit_{i}=3):\n    \"\"\"Task {i}.\"\"\""}
                      for i in range(args.old_jobs)]
    old = measure(with_signature, per_job_regex, warm=1)
    print_table(f"plan constraint set-up per distinct code job ({len(tokenizer)} tokens)",
                ["design", "jobs", "first job ms", "set-up ms (median after warm-up)", "RSS growth MB / 100 jobs",
                 "RSS after MB"],
                [("forced prefix + 3 fixed regexes", new["jobs"], new["first_ms"], new["setup_ms"],
                  new["rss_growth_mb_per_100"], new["rss_after_mb"]),
                 ("per-job regex (before)", old["jobs"], old["first_ms"], old["setup_ms"],
                  old["rss_growth_mb_per_100"], old["rss_after_mb"])])
    emit_json({"setup_ms_per_job": new["setup_ms"], "rss_growth_mb_per_100_jobs": new["rss_growth_mb_per_100"],
               "per_job_regex_setup_ms": old["setup_ms"],
               "per_job_regex_rss_growth_mb_per_100_jobs": old["rss_growth_mb_per_100"],
               "vocabulary": len(tokenizer), "jobs": new["jobs"], "old_jobs": old["jobs"]})


if __name__ == "__main__":
    main()
