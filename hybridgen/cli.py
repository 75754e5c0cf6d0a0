"""The `hybridgen` command line. Each command lives in hybridgen/commands/; this file only groups them."""

from __future__ import annotations

import sys

import click

from hybridgen import __version__
from hybridgen.commands.batches import batches
from hybridgen.commands.bench import bench
from hybridgen.commands.db import db
from hybridgen.commands.export import export
from hybridgen.commands.items import items
from hybridgen.commands.reap import reap
from hybridgen.commands.requeue import requeue
from hybridgen.commands.run import run
from hybridgen.commands.serve import serve
from hybridgen.commands.status import status
from hybridgen.commands.submit import submit
from hybridgen.commands.tokens import tokens
from hybridgen.commands.users import users
from hybridgen.commands.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hybridgen")
@click.option("--init", is_flag=True,
              help="Create HYBRIDGEN_DATA_DIR if it does not exist (otherwise a folder other than the default "
                   "must exist: a typo must not start an empty database).")
def cli(init: bool) -> None:
    """hybridgen: batch content generation with an AR planner, a block-diffusion refiner,
    validators and AR fallback.

    Settings come from HYBRIDGEN_* environment variables (see the README), and every one is
    checked before a command stores or loads anything. With none set, everything runs embedded:
    SQLite database and broker under the user data folder.
    """


for command in (db, submit, worker, run, status, batches, items, requeue, export, bench, serve, users, tokens, reap):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(prog_name="hybridgen", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
