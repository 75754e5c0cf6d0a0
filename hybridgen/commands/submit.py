"""`hybridgen submit FILE`: store a batch and queue it for workers."""

from __future__ import annotations

import json

import click

from hybridgen.commands.inputs import expand_paths, read_batch
from hybridgen.commands.storing import NEW_BATCH_HELP, store_files
from hybridgen.context import CliContext
from hybridgen.words import plural
from service.submission import MODES, queued_item_ids
from service.webhook import PARAM as WEBHOOK_PARAM, WebhookError, batch_url
from workers.enqueue import enqueue_items


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="hybrid (AR plan + diffusion refiner + AR fallback), ar (AR plan + AR text) or plain (one "
                   "plain prompt per item: the baseline); default: HYBRIDGEN_DEFAULT_MODE (hybrid). Jobs may "
                   "override it in their params.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--new-batch", is_flag=True, help=NEW_BATCH_HELP)
@click.option("--webhook", metavar="URL", default=None,
              help="POST a signed JSON summary to URL when the batch has finished (default: HYBRIDGEN_WEBHOOK_URL); "
                   "it must start with one of HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES.")
def submit(files: tuple[str, ...], mode: str, as_json: bool, new_batch: bool, webhook: str | None) -> None:
    """Store each FILE (JSONL, one job per line, or a JSON array of jobs; a folder means its *.jsonl
    files) as a batch and queue it. Prints the batch id. Every file is checked before anything is stored."""
    ctx = CliContext.from_env()
    try:
        webhook_url = batch_url(webhook, ctx.settings.webhook)
    except WebhookError as e:
        raise click.BadParameter(str(e), param_hint="--webhook") from None
    parsed = [(p, read_batch(p)) for p in expand_paths(files)]
    sessions = ctx.sessions()
    results = []
    say = (lambda text: None) if as_json else (lambda text: click.echo(text, err=True))
    params = {WEBHOOK_PARAM: webhook_url} if webhook_url else None
    for path, result in store_files(sessions, parsed, ctx.settings, mode=mode, new_batch=new_batch, say=say,
                                    params=params):
        # A resubmitted batch may still have items that never reached a worker; queue those.
        to_queue = result.new_item_ids or queued_item_ids(sessions, result.batch_id, only_unenqueued=True)
        tasks = _enqueue(ctx, result.batch_id, to_queue) if to_queue else 0
        results.append({**result.as_dict(), "file": str(path), "tasks": tasks})
        if not as_json:
            note = " (already submitted: nothing new stored)" if result.duplicate_batch else ""
            click.echo(
                f"{path}: batch {result.batch_id}, {plural(len(result.new_item_ids), 'new item')}, "
                f"{len(result.existing)} already stored by key, {plural(tasks, 'task')} queued{note}",
                err=True,
            )
            click.echo(result.batch_id)
    if as_json:
        click.echo(json.dumps(results, indent=2))


def _enqueue(ctx: CliContext, batch_id: int, item_ids: list[int]) -> int:
    """Queue the stored items; a broker outage is an error that says the batch is safe."""
    from kombu.exceptions import OperationalError

    try:
        return enqueue_items(ctx.celery, ctx.settings, item_ids)
    except (OperationalError, OSError) as e:
        # The batch is committed; only its tasks are missing. Items never sent are found by the
        # reaper, and resubmitting the same file queues exactly those.
        raise click.ClickException(
            f"batch {batch_id} is stored ({plural(len(item_ids), 'item')}), but the broker refused its tasks: "
            f"{str(e).rstrip('.')}. Nothing is lost: the workers' reaper sends them once the broker is back (after "
            "HYBRIDGEN_REENQUEUE_AFTER_S), or run `hybridgen reap` or submit the same file again."
        ) from None
