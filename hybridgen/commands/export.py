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
from service.export import export_records
from service.storage.models import Batch


@click.command()
@click.argument("batch_id", type=int)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (written to a temporary file first, then renamed); - for standard output.")
@click.option("--include-rejected", is_flag=True, help="Also export items a reviewer rejected.")
def export(batch_id: int, output: str, include_rejected: bool) -> None:
    """Write one JSON object per item of BATCH_ID: input, status, output, review decision, reports.
    Jobs whose keys were stored by an earlier batch come last, marked `stored_earlier`."""
    ctx = CliContext.from_env()
    path = None if output == "-" else Path(output).expanduser()
    if path is not None and not path.parent.exists():
        raise click.BadParameter(f"folder {path.parent} does not exist", param_hint="--output")
    with ctx.sessions()() as session:
        if session.get(Batch, batch_id) is None:
            raise click.ClickException(f"no batch with id {batch_id}")
        if path is None:
            count = _write(session, batch_id, include_rejected, sys.stdout)
            where = "standard output"
        else:
            count = _write_atomically(session, batch_id, include_rejected, path)
            where = str(path)
    click.echo(f"wrote {plural(count, 'item')} of batch {batch_id} to {where}", err=True)


def _write(session: Session, batch_id: int, include_rejected: bool, fh: IO[str]) -> int:
    count = 0
    for record in export_records(session, batch_id, include_rejected=include_rejected):
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_atomically(session: Session, batch_id: int, include_rejected: bool, path: Path) -> int:
    """A reader never sees half a file: it appears, whole, under its name when done."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            count = _write(session, batch_id, include_rejected, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
