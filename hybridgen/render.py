"""Terminal rendering of batch summaries (rich tables)."""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.table import Table


def _tokens_per_forward(summary: dict[str, Any]) -> str:
    tokens = sum(p["generated_tokens"] for p in summary["paths"].values())
    forwards = sum(p["forward_passes"] for p in summary["paths"].values())
    return f"{tokens / forwards:.2f}" if forwards else "-"


def batches_table(summaries: Sequence[dict[str, Any]], title: str = "results") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("batch", justify="right")
    table.add_column("file", overflow="fold")
    for col in ("items", "done", "flagged", "error", "pending", "tok/fwd"):
        table.add_column(col, justify="right")
    for s in summaries:
        c = s["counts"]
        table.add_row(
            str(s["batch_id"]), s["name"], str(s["total"]), str(c["done"]), str(c["flagged"]),
            str(c["error"]), str(c["queued"] + c["running"]), _tokens_per_forward(s),
        )
    return table


def summary_table(summary: dict[str, Any], console: Console | None = None) -> None:
    """One batch, for `hybridgen status`."""
    console = console or Console()
    console.print(batches_table([summary], title=f"batch {summary['batch_id']} (mode {summary['mode']})"))
    console.print(f"progress {summary['finished']}/{summary['total']} ({summary['progress']:.0%})")


def run_report(summaries: Sequence[dict[str, Any]], elapsed_s: float, processed: int, console: Console) -> None:
    """All batches of a `hybridgen run`, then totals and how to export."""
    console.print(batches_table(summaries))
    done = sum(s["counts"]["done"] for s in summaries)
    flagged = sum(s["counts"]["flagged"] for s in summaries)
    errors = sum(s["counts"]["error"] for s in summaries)
    if processed:
        rate = f" ({processed / elapsed_s * 3600:.0f} items/hour)" if elapsed_s > 0 else ""
        console.print(f"processed {processed} item(s) in {elapsed_s:.1f} s{rate}")
    else:
        console.print("nothing left to process: every item was already finished")
    console.print(f"totals: {done} done, {flagged} flagged for review, {errors} error")
    for s in summaries:
        console.print(f"export batch {s['batch_id']}: hybridgen export {s['batch_id']} -o batch-{s['batch_id']}.jsonl")
