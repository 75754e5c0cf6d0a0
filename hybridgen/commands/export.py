"""`hybridgen export BATCH -o FILE.jsonl`: the batch's results as JSONL (`-o -`: standard output)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO

import click
from sqlalchemy.orm import Session

from hybridgen.context import CliContext
from hybridgen.words import plural
from service.export import ExportOptions, ExportSummary, describe_left_out, export_records
from service.storage.models import Batch, ItemStatus

STATUSES = [s.value for s in ItemStatus]


def parse_statuses(_ctx, _param, value: str | None) -> frozenset[str]:
    names = frozenset(s.strip() for s in (value or "").split(",") if s.strip())
    unknown = sorted(names - set(STATUSES))
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r} is no item status; expected any of {', '.join(STATUSES)} "
                                 "(comma-separated)")
    return names


@click.command()
@click.argument("batch_id", type=int)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (written to a temporary file first, then renamed); - for standard output.")
@click.option("--status", "statuses", callback=parse_statuses, metavar="STATUS[,STATUS]",
              help="Only items with these statuses (queued, running, done, flagged, error); naming flagged "
                   "includes unreviewed flagged items.")
@click.option("--reviewed-only", is_flag=True, help="Only items a reviewer approved or edited (and rejected ones "
                                                     "with --include-rejected).")
@click.option("--include-flagged", is_flag=True, help="Also export flagged items nobody has reviewed yet.")
@click.option("--include-rejected", is_flag=True, help="Also export items a reviewer rejected.")
def export(batch_id: int, output: str, statuses: frozenset[str], reviewed_only: bool, include_flagged: bool,
           include_rejected: bool) -> None:
    """Write one JSON object per item of BATCH_ID: input, output, its final `decision` (approved, edited,
    rejected, unreviewed-pass, unreviewed-flagged, error, pending), review, validator reports.

    By default unreviewed flagged and rejected items are left out, and how many is said on standard
    error. Items still queued or running (requeued ones too) are exported as `pending` without output.
    Jobs whose keys were stored by an earlier batch come last, marked `stored_earlier`."""
    ctx = CliContext.from_env()
    options = ExportOptions(statuses, reviewed_only, include_rejected, include_flagged)
    path = None if output == "-" else Path(output).expanduser()
    if path is not None and not path.parent.exists():
        raise click.BadParameter(f"folder {path.parent} does not exist", param_hint="--output")
    summary = ExportSummary()
    with ctx.sessions()() as session:
        if session.get(Batch, batch_id) is None:
            raise click.ClickException(f"no batch with id {batch_id}")
        if path is None:
            _write(session, batch_id, options, summary, sys.stdout)
            where = "standard output"
        else:
            _write_atomically(session, batch_id, options, summary, path)
            where = str(path)
    notes = [describe_left_out(summary)]
    if summary.pending:
        notes.append(f"{plural(summary.pending, 'item')} pending (queued or running: exported without output)")
    note = "; ".join(n for n in notes if n)
    click.echo(f"wrote {plural(summary.exported, 'item')} of batch {batch_id} to {where}" + (f"; {note}" if note else ""),
               err=True)


def _write(session: Session, batch_id: int, options: ExportOptions, summary: ExportSummary, fh: IO[str]) -> None:
    for record in export_records(session, batch_id, options, summary=summary):
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_atomically(session: Session, batch_id: int, options: ExportOptions, summary: ExportSummary,
                      path: Path) -> None:
    """A reader never sees half a file: it appears, whole, under its name when done."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            _write(session, batch_id, options, summary, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
