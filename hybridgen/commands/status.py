"""`hybridgen status BATCH`: progress and results of a batch."""

from __future__ import annotations

import json

import click

from hybridgen.context import CliContext
from hybridgen.render import summary_table
from pipeline.storage.queries import batch_summary


@click.command()
@click.argument("batch_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def status(batch_id: int, as_json: bool) -> None:
    """Show counts by status, progress, pass rate and decode counters of BATCH_ID."""
    ctx = CliContext.from_env()
    with ctx.sessions()() as session:
        summary = batch_summary(session, batch_id)
    if summary is None:
        raise click.ClickException(f"no batch with id {batch_id}")
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        summary_table(summary)
