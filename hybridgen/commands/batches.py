"""`hybridgen batches`: the newest batches, with counts by status, progress and age."""

from __future__ import annotations

import json

import click

from hybridgen.context import CliContext
from hybridgen.render import batches_table, console
from service.storage.queries import list_batches


@click.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many batches.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def batches(limit: int, as_json: bool) -> None:
    """List the newest batches (newest first): items by status, progress and age.
    `hybridgen status BATCH` shows one in full."""
    ctx = CliContext.from_env()
    with ctx.sessions()() as session:
        rows = list_batches(session, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no batches yet: store one with `hybridgen submit FILE` or `hybridgen run FILE`")
    else:
        console().print(batches_table(rows, title="batches"))
