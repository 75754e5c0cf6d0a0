"""`hybridgen worker`: a Celery worker that processes queued chunks."""

from __future__ import annotations

import click

from hybridgen.context import CliContext


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: HYBRIDGEN_WORKER_CONCURRENCY). One per GPU.")
@click.option("--loglevel", "-l", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True,
              help="prefork isolates models per process and survives a crashing child; solo runs in this process.")
@click.option("--hostname", "-n", default=None, help="Celery node name (default: hybridgen@<host>).")
def worker(concurrency: int | None, loglevel: str, pool: str, hostname: str | None) -> None:
    """Run a worker: takes chunks of item ids from the queue and generates them.

    Models load on the first task of each worker process. Start one worker per machine
    (or per GPU); all share the database and the broker configured in HYBRIDGEN_*.
    """
    ctx = CliContext.from_env()
    ctx.sessions()  # fail early (and create the embedded database) before taking tasks
    argv = [
        "worker",
        f"--loglevel={loglevel.upper()}",
        f"--concurrency={concurrency or ctx.settings.worker_concurrency}",
        f"--pool={pool}",
        f"--queues={ctx.settings.queue_name}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    ctx.celery.worker_main(argv)
