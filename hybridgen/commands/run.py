"""`hybridgen run FILE`: submit and process in this process, with a progress bar and a summary.

The main job for a new user: no worker, no broker. Running the same file again resumes it
(the batch is recognised by its content and only unfinished items are processed).
"""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hybridgen.commands.inputs import expand_paths, read_batch
from hybridgen.context import CliContext
from hybridgen.render import run_report
from pipeline.storage.queries import batch_summary
from pipeline.submission import MODES, chunks, queued_item_ids, submit_batch


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="hybrid (AR plan + diffusion refiner + AR fallback) or ar (AR plan + AR text); "
                   "default: HYBRIDGEN_DEFAULT_MODE (hybrid). Jobs may override it in their params.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON instead of tables.")
def run(files: tuple[str, ...], mode: str, as_json: bool) -> None:
    """Submit each FILE (JSONL; a folder means its *.jsonl files) and generate it right here,
    then print a summary. Export the results with `hybridgen export BATCH -o out.jsonl`."""
    # Heavy imports (torch, transformers) only for the command that generates.
    from generators.loading import ModelNotInstalledError
    from pipeline.orchestrator import run_chunk
    from pipeline.runtime import Runtime

    ctx = CliContext.from_env()
    parsed = [(p, read_batch(p)) for p in expand_paths(files)]  # every file checked before any is stored
    sessions = ctx.sessions()
    console = Console(stderr=True)
    batches = []
    for path, batch in parsed:
        result = submit_batch(sessions, batch, name=path.name, mode=mode or ctx.settings.default_mode)
        batches.append((result.batch_id, queued_item_ids(sessions, result.batch_id)))
        if result.duplicate_batch:
            console.print(f"{path}: already submitted as batch {result.batch_id}; resuming its unfinished items")
    runtime = Runtime(ctx.settings)
    total = sum(len(ids) for _, ids in batches)
    started = time.perf_counter()
    if total:
        with console.status(f"loading model {ctx.settings.model} ..."):
            try:
                runtime.planner
            except ModelNotInstalledError as e:
                raise click.ClickException(str(e)) from None
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            for batch_id, ids in batches:
                task = progress.add_task(f"batch {batch_id}", total=len(ids))
                for chunk in chunks(ids, ctx.settings.chunk_size):
                    run_chunk(chunk, sessions=sessions, runtime=runtime)
                    progress.advance(task, len(chunk))
    elapsed = time.perf_counter() - started
    summaries = []
    with sessions() as session:
        for batch_id, _ in batches:
            summaries.append(batch_summary(session, batch_id))
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    else:
        run_report(summaries, elapsed, total, Console())
