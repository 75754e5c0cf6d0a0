"""`hybridgen items BATCH --status flagged [--validator X]`: a batch's items and why each one failed."""

from __future__ import annotations

import json

import click
from rich.table import Table

from hybridgen.commands.selection import validator_option
from hybridgen.context import CliContext
from hybridgen.render import console
from service.storage.models import Batch, ItemStatus
from service.storage.queries import list_items


@click.command()
@click.argument("batch_id", type=int)
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in ItemStatus]),
              help="Only items with this status (repeat for several).")
@validator_option("Only items whose final attempt failed this validator (its message is the one shown).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="How many items.")
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON.")
def items(batch_id: int, statuses: tuple[str, ...], validator: str | None, limit: int, as_json: bool) -> None:
    """List the items of BATCH_ID in line order, each with its first failing validator's message
    (or its error). Requeue them with `hybridgen requeue BATCH --status ...` or `requeue ITEM...`."""
    ctx = CliContext.from_env()
    with ctx.sessions()() as session:
        if session.get(Batch, batch_id) is None:
            raise click.ClickException(f"no batch with id {batch_id}")
        rows = list_items(session, batch_id, statuses, validator, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no items in batch {batch_id} match")
        return
    table = Table(title=f"batch {batch_id}: items", title_justify="left")
    for col in ("item", "line", "key", "kind", "status", "path", "why"):
        table.add_column(col, justify="right" if col in ("item", "line") else "left",
                         overflow="fold" if col == "why" else "ellipsis")
    for r in rows:
        table.add_row(str(r["item_id"]), str(r["line"]), r["key"] or "", r["kind"], r["status"], r["path"] or "",
                      r["message"])
    console().print(table)
