"""`hybridgen export BATCH -o FILE.jsonl`: the batch's results as JSONL."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from hybridgen.context import CliContext
from pipeline.export import export_records
from pipeline.storage.models import Batch


@click.command()
@click.argument("batch_id", type=int)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (written to a temporary file first, then renamed).")
@click.option("--include-rejected", is_flag=True, help="Also export items a reviewer rejected.")
def export(batch_id: int, output: Path, include_rejected: bool) -> None:
    """Write one JSON object per item of BATCH_ID: input, status, output, review decision, reports."""
    ctx = CliContext.from_env()
    output = output.expanduser()
    if not output.parent.exists():
        raise click.BadParameter(f"folder {output.parent} does not exist", param_hint="--output")
    with ctx.sessions()() as session:
        if session.get(Batch, batch_id) is None:
            raise click.ClickException(f"no batch with id {batch_id}")
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        count = 0
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for record in export_records(session, batch_id, include_rejected=include_rejected):
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    click.echo(f"wrote {count} item(s) of batch {batch_id} to {output}", err=True)
