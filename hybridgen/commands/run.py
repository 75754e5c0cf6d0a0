"""`hybridgen run FILE`: submit and process in this process, with a progress bar and a summary.

The main job for a new user: no worker, no broker. Running the same file again resumes it
(the batch is recognised by its content and only unfinished items are processed).
"""

from __future__ import annotations

import json
import time

import click

from hybridgen.commands.inputs import expand_paths, read_batch
from hybridgen.commands.storing import NEW_BATCH_HELP, store_files
from hybridgen.context import CliContext
from hybridgen.progress import ItemProgress
from hybridgen.render import console, run_report
from hybridgen.words import plural
from service.storage.queries import batch_summary
from service.submission import MODES, chunks, queued_item_ids


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="hybrid (AR plan + diffusion refiner + AR fallback), ar (AR plan + AR text) or plain (one "
                   "plain prompt per item: the baseline); default: HYBRIDGEN_DEFAULT_MODE (hybrid). Jobs may "
                   "override it in their params.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON instead of tables.")
@click.option("--new-batch", is_flag=True, help=NEW_BATCH_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or progress lines (the summary is still printed).")
def run(files: tuple[str, ...], mode: str, as_json: bool, new_batch: bool, quiet: bool) -> None:
    """Submit each FILE (JSONL or a JSON array of jobs; a folder means its *.jsonl files) and generate
    it right here, then print a summary. Exits 1 when items ended in error. Export the results with
    `hybridgen export BATCH -o out.jsonl`.

    Progress: a bar in a terminal; otherwise a line every HYBRIDGEN_PROGRESS_INTERVAL_S seconds."""
    # Heavy imports (torch, transformers) only for the command that generates.
    from generators.loading import ModelNotInstalledError
    from pipeline.orchestrator import run_chunk
    from pipeline.runtime import Runtime

    ctx = CliContext.from_env(generates=True)
    parsed = [(p, read_batch(p)) for p in expand_paths(files)]  # every file checked before any is stored
    sessions = ctx.sessions()
    messages = console(stderr=True)
    batches = []
    say = lambda text: messages.print(text, markup=False)  # noqa: E731 - file names and keys are not markup
    for path, result in store_files(sessions, parsed, ctx.settings, mode=mode, new_batch=new_batch, say=say):
        batches.append((result.batch_id, queued_item_ids(sessions, result.batch_id)))
        if result.duplicate_batch and not quiet:
            say(f"{path}: already submitted as batch {result.batch_id}; resuming its unfinished items")
    runtime = Runtime(ctx.settings)
    total = sum(len(ids) for _, ids in batches)
    started = time.perf_counter()
    if total:
        with messages.status(f"loading model {ctx.settings.model} ..."):
            try:
                runtime.planner
            except ModelNotInstalledError as e:
                raise click.ClickException(str(e)) from None
        with ItemProgress(messages, total, interval_s=ctx.settings.progress_interval_s, quiet=quiet,
                          label=f"batch {batches[0][0]}") as progress:
            for batch_id, ids in batches:
                progress.describe(f"batch {batch_id}")
                for chunk in chunks(ids, ctx.settings.chunk_size):
                    outcome = run_chunk(chunk, sessions=sessions, runtime=runtime,
                                        on_item=lambda _item, _status: progress.advance(),
                                        on_rows=progress.rows_finished)
                    progress.advance(len(outcome.skipped) + len(outcome.lost))  # not generated here, but done with
    elapsed = time.perf_counter() - started
    summaries = []
    with sessions() as session:
        for batch_id, _ in batches:
            summaries.append(batch_summary(session, batch_id))
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    else:
        run_report(summaries, elapsed, total, console())
    failed = [s for s in summaries if s["counts"]["error"]]
    if failed:
        # flagged items are a result (for review); an error is a failure of the run itself
        errors = sum(s["counts"]["error"] for s in failed)
        click.echo(f"{plural(errors, 'item')} ended in error: "
                   + "; ".join(f"hybridgen items {s['batch_id']} --status error" for s in failed), err=True)
        raise SystemExit(1)
