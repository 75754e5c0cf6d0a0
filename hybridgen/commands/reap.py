"""`hybridgen reap`: requeue stale items and re-send lost tasks (what every worker also does periodically)."""

from __future__ import annotations

import json
import time

import click

from hybridgen.context import CliContext


@click.command()
@click.option("--loop", is_flag=True, help="Keep reaping every --interval seconds until interrupted.")
@click.option("--interval", type=click.FloatRange(min=1), default=None,
              help="Seconds between passes with --loop (default: HYBRIDGEN_REAPER_INTERVAL_S, or 60 if that is 0).")
@click.option("--json", "as_json", is_flag=True, help="Print each pass's report as one JSON line.")
def reap(loop: bool, interval: float | None, as_json: bool) -> None:
    """Requeue running items whose worker stopped heart-beating (HYBRIDGEN_STALE_AFTER_S) and send
    tasks for queued items that no task carries (never sent, or lost in a broker restart).

    Workers run this every HYBRIDGEN_REAPER_INTERVAL_S already; run it by hand (or from cron) to
    recover at once, or when no worker is up. Safe to run anywhere, any number of times: a
    duplicate task is skipped by the workers.
    """
    from workers.reaper import reap_once

    ctx = CliContext.from_env()
    ctx.sessions()  # a migrated database, or a clear error
    every = interval or (ctx.settings.reaper_interval_s if ctx.settings.reaper_interval_s >= 1 else 60.0)
    while True:
        try:
            report = reap_once(ctx.settings, ctx.celery)
        except Exception as e:  # noqa: BLE001 - a loop survives a database or broker outage
            if not loop:
                raise click.ClickException(f"reaper pass failed: {type(e).__name__}: {e}") from None
            click.echo(f"reaper pass failed: {type(e).__name__}: {e}", err=True)
        else:
            click.echo(json.dumps(report.as_dict()) if as_json else str(report))
        if not loop:
            return
        time.sleep(every)
