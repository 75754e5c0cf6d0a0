"""`hybridgen status BATCH`: progress and results of a batch."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.orm import Session

from hybridgen.context import CliContext
from hybridgen.render import console, summary_table
from pipeline.settings import Settings
from service.metrics import batch_alerts
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
        alerts = quality_alerts(session, batch_id, ctx.settings) if summary is not None else None
    if summary is None:
        raise click.ClickException(f"no batch with id {batch_id}")
    if as_json:
        click.echo(json.dumps({**summary, "quality_alerts": alerts}, indent=2))
    else:
        summary_table(summary, console(), None if alerts is None else [a["message"] for a in alerts])


def quality_alerts(session: Session, batch_id: int, settings: Settings) -> list[dict[str, Any]] | None:
    """The alerts (service.metrics) of the batch's kinds, model and mode on the days its items
    finished: each names the rate, the day, the group, the value and the threshold. None when
    HYBRIDGEN_ALERT_THRESHOLDS sets no threshold ("not computed"), which is not an empty list ("none
    fired"); `status` prints the messages, and the whole alerts as `quality_alerts` in --json."""
    thresholds = settings.alert_threshold_list
    if not thresholds:
        return None
    return [a.as_dict() for a in batch_alerts(session, batch_id, thresholds, settings.alert_min_items)]
