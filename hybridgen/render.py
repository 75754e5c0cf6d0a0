"""Terminal rendering of batch summaries (rich tables) and the small words they are made of."""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hybridgen.words import duration, plural

PIPE_WIDTH = 160
"""Columns for output that is not a terminal: rich would assume 80 and squeeze the tables."""
# `run`'s and `status`'s tables: queued and running apart, since "pending" hides a stuck worker.
STATUS_COLUMNS = ("queued", "running", "done", "flagged", "error")


def console(*, stderr: bool = False) -> Console:
    """Where a command prints tables and messages; long lines are not broken at the width."""
    out = Console(stderr=stderr, soft_wrap=True)
    return out if out.is_terminal else Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _tokens_per_forward(paths: dict[str, Any]) -> str:
    tokens = sum(p["generated_tokens"] for p in paths.values())
    forwards = sum(p["forward_passes"] for p in paths.values())
    return f"{tokens / forwards:.2f}" if forwards else "-"


def batches_table(summaries: Sequence[dict[str, Any]], title: str = "results") -> Table:
    """One row per batch: mode, counts by status, progress; the age for `batches` (rows with `age_s`),
    tokens per forward for full summaries (with `paths`)."""
    table = Table(title=title, title_justify="left")
    table.add_column("batch", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("mode")
    with_age = all("age_s" in s for s in summaries)
    with_paths = all("paths" in s for s in summaries)
    optional = (("age",) if with_age else ()) + (("tok/fwd",) if with_paths else ())
    for col in ("items", *STATUS_COLUMNS, "progress", *optional):
        table.add_column(col, justify="right")
    for s in summaries:
        c = s["counts"]
        table.add_row(
            str(s["batch_id"]), s["name"], s["mode"], str(s["total"]), *(str(c[k]) for k in STATUS_COLUMNS),
            percent(s["progress"]), *((duration(s["age_s"]),) if with_age else ()),
            *((_tokens_per_forward(s["paths"]),) if with_paths else ()),
        )
    return table


def paths_table(summaries: Sequence[dict[str, Any]]) -> Table:
    """Attempts per generation path, over all the summaries: how often each ran and passed, and its cost."""
    totals: dict[str, dict[str, float]] = {}
    for s in summaries:
        for path, p in s["paths"].items():
            t = totals.setdefault(path, {k: 0 for k in ("attempts", "passed", "generated_tokens", "forward_passes",
                                                        "seconds")})
            for k in t:
                t[k] += p[k]
    table = Table(title="attempts by path", title_justify="left")
    for col in ("path", "attempts", "passed", "tokens", "forwards", "tok/fwd", "seconds"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for path, t in totals.items():
        tpf = f"{t['generated_tokens'] / t['forward_passes']:.2f}" if t["forward_passes"] else "-"
        table.add_row(path, str(t["attempts"]), str(t["passed"]), str(t["generated_tokens"]), str(t["forward_passes"]),
                      tpf, f"{t['seconds']:.1f}")
    return table


def failure_lines(summary: dict[str, Any]) -> list[str]:
    """Why items failed, each with the command that lists them."""
    b = summary["batch_id"]
    lines = [f"  {plural(n, 'item')} failed {name}: hybridgen items {b} --status flagged --validator {name}"
             for name, n in summary["failures"].items()]
    if summary["counts"]["error"]:
        lines.append(f"  {plural(summary['counts']['error'], 'item')} ended in error: "
                     f"hybridgen items {b} --status error  (retry: hybridgen requeue {b} --status error)")
    return lines


def summary_table(summary: dict[str, Any], console: Console | None = None,
                  alerts: Sequence[str] | None = None) -> None:
    """One batch, for `hybridgen status`. `alerts`: None when no alert thresholds are set."""
    console = console or Console()
    console.print(batches_table([summary], title=f"batch {summary['batch_id']} (mode {summary['mode']})"))
    t = summary["timing"]
    console.print(f"progress {summary['finished']}/{summary['total']} ({summary['progress']:.0%}); "
                  f"elapsed {duration(t['elapsed_s'])}; "
                  + (f"{t['items_per_hour']:.0f} items/hour, ETA {duration(t['eta_s'])}" if t["items_per_hour"]
                     else "ETA once items have finished"))
    console.print(f"pass rate {percent(summary['pass_rate'])} of finished; "
                  f"fallback rate {percent(summary['fallback_rate'])} of hybrid attempts; "
                  f"tokens per forward {_tokens_per_forward(summary['paths'])}")
    r = summary["reviews"]
    console.print(f"reviews: {r['approved']} approved, {r['rejected']} rejected, {r['edited']} edited, "
                  f"{r['requeued']} requeued; {r['flagged_not_reviewed']} flagged not reviewed yet")
    if summary.get("stored_earlier"):
        console.print(f"{plural(summary['stored_earlier'], 'job')} of its file were stored earlier under their "
                      "keys (exported with the batch, marked stored_earlier)")
    for line in failure_lines(summary):
        console.print(line, markup=False)
    if alerts is None:
        console.print("quality alerts: not computed (no thresholds: set HYBRIDGEN_ALERT_THRESHOLDS)")
    elif not alerts:
        console.print("quality alerts: none")
    for alert in alerts or ():
        console.print("[bold red]alert[/]: " + escape(alert), soft_wrap=True)


def run_report(summaries: Sequence[dict[str, Any]], elapsed_s: float, processed: int, console: Console) -> None:
    """All batches of a `hybridgen run`, then totals, failures by validator and how to export."""
    console.print(batches_table(summaries))
    if any(s["paths"] for s in summaries):
        console.print(paths_table(summaries))
    done = sum(s["counts"]["done"] for s in summaries)
    flagged = sum(s["counts"]["flagged"] for s in summaries)
    errors = sum(s["counts"]["error"] for s in summaries)
    if processed:
        rate = f" ({processed / elapsed_s * 3600:.0f} items/hour)" if elapsed_s > 0 else ""
        console.print(f"processed {plural(processed, 'item')} in {elapsed_s:.1f} s{rate}")
    else:
        console.print("nothing left to process: every item was already finished")
    console.print(f"totals: {done} done, {flagged} flagged for review, {errors} error")
    for s in summaries:
        for line in failure_lines(s):
            console.print(line, markup=False, soft_wrap=True)
    for s in summaries:
        console.print(f"export batch {s['batch_id']}: hybridgen export {s['batch_id']} -o batch-{s['batch_id']}.jsonl")
