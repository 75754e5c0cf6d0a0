"""`hybridgen requeue BATCH --status error|flagged` / `requeue ITEM...`: generate finished items again.

Each requeue is stored as a review (decision `requeue`), as the review app and the HTTP API store
theirs, so a batch's history says who sent what back and why.
"""

from __future__ import annotations

import getpass

import click

from hybridgen.commands.selection import validator_option
from hybridgen.context import CliContext
from hybridgen.words import plural
from service.reviews import review_items, reviewer_named
from service.storage.models import Batch, ItemStatus, ReviewDecision
from service.storage.queries import matching_item_ids

FINISHED = [s.value for s in ItemStatus.final()]


@click.command()
@click.argument("ids", nargs=-1, type=int, required=True, metavar="BATCH | ITEM...")
@click.option("--status", "statuses", multiple=True, type=click.Choice(sorted(FINISHED)),
              help="Requeue the items of BATCH with this status (repeat for several); without it, IDS are items.")
@validator_option("With --status: only the items whose final attempt failed this validator.")
@click.option("--note", default=None, help="Why, stored with each review.")
@click.option("--reviewer", default=None,
              help="Name the reviews are stored under (default: cli:<login name>; a review-app user's name links them).")
def requeue(ids: tuple[int, ...], statuses: tuple[str, ...], validator: str | None, note: str | None,
            reviewer: str | None) -> None:
    """Put finished items back in the queue: those of BATCH with --status (e.g. `requeue 3 --status error`),
    or the items ITEM... A worker generates them again, or `hybridgen run FILE` does when run again."""
    if statuses and len(ids) != 1:
        raise click.UsageError("with --status, give one BATCH id")
    if validator and not statuses:
        raise click.UsageError("--validator goes with --status")
    ctx = CliContext.from_env()
    sessions = ctx.sessions()
    with sessions.begin() as session:
        if statuses:
            if session.get(Batch, ids[0]) is None:
                raise click.ClickException(f"no batch with id {ids[0]}")
            item_ids = matching_item_ids(session, ids[0], statuses, validator)
        else:
            item_ids = list(ids)
        who = reviewer_named(session, reviewer or f"cli:{getpass.getuser()}")
        outcome = review_items(session, item_ids, ReviewDecision.requeue, who, note=note)
    from hybridgen.admin.services import AppServices, celery_enqueue  # the web stack: only when needed

    for item_id, why in outcome.skipped.items():
        click.echo(f"item {item_id} skipped: {why}", err=True)
    if not outcome.requeued:
        raise click.ClickException("nothing requeued" + ("" if item_ids else ": no item matches"))
    queued = AppServices(ctx.settings, sessions, celery_enqueue(ctx.settings)).try_enqueue(outcome.requeued)
    click.echo(f"requeued {plural(len(outcome.requeued), 'item')} (stored as reviews by {who.username})"
               + ("" if queued else "; the broker did not answer, so the workers' reaper will queue them"))
