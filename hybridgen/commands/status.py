"""`hybridgen status BATCH`: progress and results of a batch."""

from __future__ import annotations

import json

import click
from sqlalchemy.orm import Session

from hybridgen.context import CliContext
from hybridgen.render import console, summary_table
from service.storage.queries import batch_summary


@click.command()
@click.argument("batch_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def status(batch_id: int, as_json: bool) -> None:
    """Show BATCH_ID: items queued, running and finished; elapsed time and the ETA at the observed rate;
    pass and fallback rates, tokens per forward; review counts; failures by validator, with the
    commands that list them."""
    ctx = CliContext.from_env()
    with ctx.sessions()() as session:
        summary = batch_summary(session, batch_id)
        alerts = quality_alerts(session, batch_id) if summary is not None else None
    if summary is None:
        raise click.ClickException(f"no batch with id {batch_id}")
    if as_json:
        click.echo(json.dumps({**summary, "quality_alerts": alerts}, indent=2))
    else:
        summary_table(summary, console(), alerts)


def quality_alerts(session: Session, batch_id: int) -> list[str] | None:
    """The hook for the quality metrics of issue 25 (item 8): the alerts of the batch's kind, model and
    mode whose daily rate crossed its threshold, as sentences. There are no quality metrics yet, so
    this answers None ("no alerts can be computed"), never an empty list ("none fired"); `status`
    prints what it returns, in the table and as `quality_alerts` in --json."""
    return None
