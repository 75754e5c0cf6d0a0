"""How long the quality metrics (service/metrics.py) take over many items, on a scratch PostgreSQL database.

    .venv/bin/python benchmarks/metrics_query.py [--items 50000] [--days 30] [--repeat 10]

Creates a database, migrates it, stores N finished items spread over the days, kinds, modes and two
models (1-2 attempts each, some reviews and false-flag labels; claimed in chunks of 8), then times `metrics_report` (the
page and GET /api/metrics) and `batch_alerts` (`hybridgen status`). Prints a table and one JSON line;
drops the database at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG = "host=127.0.0.1 port=5432 dbname=postgres"


def seed(url: str, n_items: int, days: int, rng: random.Random) -> int:
    from sqlalchemy import insert

    from service.storage.db import session_factory
    from service.storage.models import Attempt, Batch, Feedback, Item

    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    sessions = session_factory(url)
    with sessions.begin() as s:
        batches = [Batch(name=f"b{m}", mode=mode, params={"model": model})
                   for m, (mode, model) in enumerate([("hybrid", "model-a"), ("ar", "model-a"), ("hybrid", "model-b")])]
        s.add_all(batches)
        s.flush()
        batch_ids = [(b.id, b.mode, b.params["model"]) for b in batches]
    items, attempts, feedback = [], [], []
    claims: dict[int, datetime] = {}
    for i in range(n_items):
        batch_id, mode, model = batch_ids[i % 3]
        # chunks of 8 items of one batch are claimed together (HYBRIDGEN_CHUNK_SIZE's default)
        claimed = claims.setdefault(i // 24, now - timedelta(days=rng.randrange(days), minutes=rng.randrange(1440)))
        finished = claimed + timedelta(seconds=rng.randrange(5, 600))
        status = rng.choices(["done", "flagged", "error"], [0.75, 0.22, 0.03])[0]
        kind = ("article", "product", "code")[i % 3 if i % 7 else 0]
        items.append(dict(id=i + 1, batch_id=batch_id, line_no=i + 1, kind=kind,
                          input={"i": i}, params={}, status=status, run_count=1, output="x", started_at=claimed,
                          finished_at=finished, created_at=claimed, updated_at=finished,
                          review_status=rng.choice([None, None, None, "approved", "rejected", "edited"])))
        if status == "error":
            continue
        first = "ar" if mode == "ar" else "hybrid"
        passed = status == "done" and rng.random() < 0.7
        paths = [(first, passed)] + ([] if passed or mode == "ar" else [("ar_fallback", status == "done")])
        for path, ok in paths:
            attempts.append(dict(item_id=i + 1, run_no=1, path=path, models={"planner": model}, passed=ok,
                                 reports=[], timings={}, generated_tokens=100, forward_passes=rng.randrange(40, 100),
                                 tokens_per_forward=1.5, duration_s=1.0, prompt_tokens=20, started_at=claimed,
                                 finished_at=finished))
        if status == "flagged" and rng.random() < 0.2:
            feedback.append(dict(item_id=i + 1, label="false_flag", validator="contradiction", labeller_name="bench",
                                 created_at=finished + timedelta(minutes=5)))
    with sessions.begin() as s:
        for table, rows in ((Item, items), (Attempt, attempts), (Feedback, feedback)):
            for start in range(0, len(rows), 5000):
                s.execute(insert(table), rows[start:start + 5000])
    with sessions() as s:
        s.execute(__import__("sqlalchemy").text("ANALYZE"))
        s.commit()
    return batch_ids[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    import psycopg

    from migrations import runner
    from service.metrics import batch_alerts, metrics_report
    from service.storage.db import dispose_engines, session_factory
    from pipeline.settings import parse_alert_thresholds

    name = f"hybridgen_bench_metrics_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG + " user=postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{admin.info.user}@127.0.0.1:5432/{name}"
    try:
        runner.upgrade(url)
        t0 = time.perf_counter()
        batch_id = seed(url, args.items, args.days, random.Random(0))
        seed_s = time.perf_counter() - t0
        thresholds = parse_alert_thresholds("flag_rate>0.2,final_pass_rate<0.8,fallback_rate>0.5")
        timings: dict[str, list[float]] = {"metrics_report": [], "batch_alerts": []}
        with session_factory(url)() as s:
            for _ in range(args.repeat):
                t = time.perf_counter()
                report = metrics_report(s, thresholds, 20, days=args.days)
                timings["metrics_report"].append(time.perf_counter() - t)
                t = time.perf_counter()
                alerts = batch_alerts(s, batch_id, thresholds, 20)
                timings["batch_alerts"].append(time.perf_counter() - t)
        items = sum(r.items for r in report.rows)
        load = open("/proc/loadavg").read().split()[0] if Path("/proc/loadavg").exists() else "?"
        print(f"load average {load} on {__import__('os').cpu_count()} CPUs")
        print(f"{args.items} items over {args.days} days (seeded in {seed_s:.1f} s): {len(report.rows)} rows, "
              f"{items} items counted, {len(report.alerts)} alerts; {len(alerts)} for batch {batch_id}")
        print(f"{'query':<16} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        summary = {}
        for key, values in timings.items():
            values.sort()
            p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
            summary[key] = {"median_ms": round(statistics.median(values) * 1000, 1), "p95_ms": round(p95 * 1000, 1),
                            "max_ms": round(values[-1] * 1000, 1)}
            print(f"{key:<16} {summary[key]['median_ms']:>10} {summary[key]['p95_ms']:>8} {summary[key]['max_ms']:>8}")
        print(json.dumps({"benchmark": "metrics_query", "items": args.items, "days": args.days, "repeat": args.repeat,
                          "rows": len(report.rows), "items_counted": items, **summary}))
    finally:
        dispose_engines()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
