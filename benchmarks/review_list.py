"""The review list on PostgreSQL with 50,000 items: p50 / p95 of the list page's queries, for several
filters and full-text searches.

Fills a scratch database (created on the server, migrated to head, dropped at the end) with items
made from the defect set's real outputs (benchmarks/defect_set/outputs.jsonl: articles, product
records and code of a few hundred words, with the validators they failed), varied per item so no
two texts are the same; mixed statuses (done, flagged, error, queued), failing validators including
`degeneration[description]`, and a third of the flagged items already reviewed. Then times, per case:

- list: what `ItemAdmin.list` runs, `service.review_list.list_page` (count + a page of 50 + the page's
  final reports);
- page: that plus the queue count the list page shows ("Review these: N waiting"), i.e. every query
  of one list page load.

It also says whether the full-text searches use the GIN index of migration 0004 (EXPLAIN).

    .venv/bin/python benchmarks/review_list.py [--items 50000] [--repeat 30]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from benchmarks.common import emit_json, machine, print_table  # noqa: E402
from service.review_list import ItemFilter, list_page, queue_count  # noqa: E402
from service.storage.models import Attempt, Batch, Item  # noqa: E402
from service.storage.search import search_text  # noqa: E402
from service.storage.types import utcnow  # noqa: E402

DEFECT_OUTPUTS = Path(__file__).resolve().parent / "defect_set" / "outputs.jsonl"
TARGET_P95_MS = 300.0
RARE_WORD = "Aurora"
CASES: list[tuple[str, dict]] = [
    ("no filter", {}),
    ("no filter, page 400", {"_page": 400}),
    ("status=flagged", {"status": "flagged"}),
    ("flagged, not reviewed", {"status": "flagged", "review": "none"}),
    ("failing=degeneration", {"failing": "degeneration"}),
    ("product, degeneration, not reviewed", {"kind": "product", "failing": "degeneration", "review": "none"}),
    ("batch + status=done", {"batch": 3, "status": "done"}),
    ("sort by updated_at", {"_sort": "updated_at"}),
    (f"search {RARE_WORD} (rare)", {"search": RARE_WORD}),
    ("search 'cast iron'", {"search": "cast iron"}),
    ("search 'immune system' + flagged", {"search": "immune system", "status": "flagged"}),
    ("search 'the' (in every item)", {"search": "the"}),
    ("search 'function' + not reviewed", {"search": "function", "review": "none"}),
    ("search a client key", {"search": "bench-31337"}),
]


def load_outputs() -> list[dict]:
    rows = [json.loads(line) for line in DEFECT_OUTPUTS.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("output")]


def varied(kind: str, output: str, n: int, rng: random.Random) -> str:
    """The output with a few per-item words, so that every item's text is its own."""
    tag = f"lot{n} batch-{n % 97} ref{rng.randrange(10**6)}"
    if kind == "article":
        return output + f"\n\nReference {tag}.\n"
    if kind == "code":
        return output + f"\n# {tag}\n"
    try:
        record = json.loads(output)
        if isinstance(record, dict):
            record["description"] = f"{record.get('description', '')} ({tag})"
            return json.dumps(record, indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        pass
    return output + f" {tag}"


def fill(url: str, n_items: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    outputs = load_outputs()
    engine = create_engine(url)
    now = utcnow()
    batches = 10
    per_batch = -(-n_items // batches)
    statuses = {"done": 0, "flagged": 0, "error": 0, "queued": 0}
    rare = 0
    with engine.begin() as conn:
        batch_ids = [conn.execute(insert(Batch).values(name=f"bench-{b}.jsonl", mode="hybrid", params={},
                                                       item_count=per_batch, created_at=now).returning(Batch.id))
                     .scalar_one() for b in range(batches)]
    n = 0
    chunk = 1000
    while n < n_items:
        items, attempts = [], []
        for _ in range(min(chunk, n_items - n)):
            src = outputs[rng.randrange(len(outputs))]
            kind, failed = src["kind"], [v for v in (src.get("failed_validators") or []) if v]
            roll = rng.random()
            if roll < 0.02:
                status = "queued"
            elif roll < 0.04:
                status = "error"
            else:
                status = "flagged" if (failed and not src.get("passed")) else "done"
            output = None if status in ("queued", "error") else varied(kind, src["output"], n, rng)
            if output and rng.random() < 0.0005:  # about 25 of 50,000 mention the rare word
                output += f"\n{RARE_WORD} borealis.\n"
                rare += 1
            review = None
            if status == "flagged" and rng.random() < 0.33:
                review = rng.choice(["approved", "rejected", "edited"])
            statuses[status] += 1
            created = now - timedelta(seconds=n_items - n)
            items.append({
                "id": n + 1, "batch_id": batch_ids[n // per_batch], "line_no": n % per_batch + 1, "kind": kind,
                "input": src["input"], "params": {}, "client_key": f"bench-{n}", "status": status,
                "output": output, "final_path": src.get("path") if output else None,
                "final_attempt_id": n + 1 if output else None,
                "error": "worker crashed: CUDA out of memory" if status == "error" else None,
                "review_status": review, "edited_output": None,
                "search_text": search_text(src["input"], output),
                "failed_validators": ("," + ",".join(sorted(set(failed))) + ",")
                if failed and status == "flagged" else None,
                "run_count": 1, "created_at": created, "updated_at": created + timedelta(seconds=rng.randrange(3600)),
            })
            if output:
                attempts.append({
                    "id": n + 1, "item_id": n + 1, "run_no": 1, "path": src.get("path") or "hybrid",
                    "models": {}, "passed": status == "done", "output": None, "plan": None,
                    "reports": [{"validator": v, "passed": False, "score": 0.0, "message": f"{v} failed on this output",
                                 "evidence": [], "details": {}} for v in failed] if status == "flagged" else [],
                    "timings": {}, "started_at": created, "finished_at": created,
                })
            n += 1
        with engine.begin() as conn:
            conn.execute(insert(Item), items)
            if attempts:
                conn.execute(insert(Attempt), attempts)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        size = conn.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
        avg_words = conn.execute(text(
            "SELECT avg(array_length(regexp_split_to_array(output, '\\s+'), 1)) FROM items WHERE output IS NOT NULL"
        )).scalar_one()
    engine.dispose()
    return {"statuses": statuses, "rare_word_items": rare, "database_size": size, "avg_output_words": round(avg_words)}


def uses_fts_index(session, flt: ItemFilter) -> bool:
    """Whether PostgreSQL plans the count of `flt` through the GIN full-text index, with the
    parameters bound by the server as the app binds them."""
    stmt = select(func.count()).select_from(Item).where(*flt.conditions("postgresql"))
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())
    plan = session.connection().exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).scalars().all()
    return any("ix_items_search_text_fts" in line for line in plan)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_cases(url: str, repeat: int) -> list[dict]:
    from service.storage.db import session_factory

    sessions = session_factory(url)
    results = []
    for name, params in CASES:
        flt = ItemFilter.from_params({k: str(v) for k, v in params.items() if not k.startswith("_")}, strict=True)
        page, sort = params.get("_page", 1), params.get("_sort")
        list_ms, page_ms = [], []
        count = None
        for i in range(repeat + 3):
            with sessions() as s:
                t0 = time.perf_counter()
                result = list_page(s, flt, page=page, page_size=50, sort_by=sort, descending=True)
                t1 = time.perf_counter()
                queue_count(s, flt)
                t2 = time.perf_counter()
            if i >= 3:  # the first runs warm the caches
                list_ms.append((t1 - t0) * 1000)
                page_ms.append((t2 - t0) * 1000)
            count = result.count
        with sessions() as s:
            fts = uses_fts_index(s, flt) if flt.search else None
        results.append({"case": name, "matching": count, "list_p50_ms": statistics.median(list_ms),
                        "list_p95_ms": percentile(list_ms, 0.95), "page_p50_ms": statistics.median(page_ms),
                        "page_p95_ms": percentile(page_ms, 0.95), "fts_index": fts})
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                    help="a database on the server to create the scratch database from")
    args = ap.parse_args()
    if args.items < 100 or args.repeat < 1:
        ap.error("--items must be at least 100 and --repeat at least 1")

    from migrations import runner
    from service.storage.db import dispose_engines

    name = f"hybridgen_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    base = args.pg_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        runner.upgrade(url)
        t0 = time.perf_counter()
        data = fill(url, args.items)
        fill_s = time.perf_counter() - t0
        results = time_cases(url, args.repeat)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    print(f"review list, {args.items} items on PostgreSQL ({data['database_size']}, "
          f"{data['avg_output_words']} words per output on average, statuses {data['statuses']}); "
          f"filled in {fill_s:.0f} s; {args.repeat} runs per case; {machine()}")
    print_table("list = count + page of 50 + its reports; page = list + the queue count (one list page load)",
                ["case", "matching", "list p50 ms", "list p95 ms", "page p50 ms", "page p95 ms", "GIN index"],
                [[r["case"], r["matching"], r["list_p50_ms"], r["list_p95_ms"], r["page_p50_ms"], r["page_p95_ms"],
                  "-" if r["fts_index"] is None else ("yes" if r["fts_index"] else "NO")] for r in results])
    worst = max(r["page_p95_ms"] for r in results)
    print(f"\nworst page p95: {worst:.1f} ms (target {TARGET_P95_MS:.0f} ms): "
          f"{'met' if worst <= TARGET_P95_MS else 'NOT met'}")
    emit_json({"benchmark": "review_list", "items": args.items, "repeat": args.repeat, "machine": machine(),
               "fill_s": round(fill_s, 1), **data, "target_p95_ms": TARGET_P95_MS,
               "worst_page_p95_ms": round(worst, 1), "met": worst <= TARGET_P95_MS,
               "cases": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in results]})


if __name__ == "__main__":
    main()
