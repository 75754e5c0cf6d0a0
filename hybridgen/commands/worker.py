"""`hybridgen worker`: a Celery worker that processes queued chunks."""

from __future__ import annotations

import os

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
    processes = concurrency or ctx.settings.worker_concurrency
    _limit_torch_threads(ctx.settings.torch_threads, processes if pool == "prefork" else 1)
    argv = [
        "worker",
        f"--loglevel={loglevel.upper()}",
        f"--concurrency={processes}",
        f"--pool={pool}",
        f"--queues={ctx.settings.queue_name}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    ctx.celery.worker_main(argv)


def _limit_torch_threads(configured: int, processes: int) -> None:
    """Give each worker process its share of the CPU cores before any of them imports torch.

    torch uses every core in every process by default; two processes on two cores then spin
    against each other, 6-25x slower than with one thread each (docs/reliability.md). The
    children import torch after fork and read OMP_NUM_THREADS then. An explicit
    OMP_NUM_THREADS in the environment wins over the automatic share, HYBRIDGEN_TORCH_THREADS over both.
    """
    if configured <= 0 and "OMP_NUM_THREADS" in os.environ:
        return
    threads = configured if configured > 0 else max(1, (os.cpu_count() or 1) // processes)
    os.environ["OMP_NUM_THREADS"] = str(threads)
