"""The `hybridgen` command line. Each command lives in hybridgen/commands/; this file only groups them."""

from __future__ import annotations

import sys

import click

from hybridgen import __version__
from hybridgen.commands.db import db
from hybridgen.commands.export import export
from hybridgen.commands.reap import reap
from hybridgen.commands.run import run
from hybridgen.commands.serve import serve
from hybridgen.commands.status import status
from hybridgen.commands.submit import submit
from hybridgen.commands.tokens import tokens
from hybridgen.commands.users import users
from hybridgen.commands.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hybridgen")
def cli() -> None:
    """hybridgen: batch content generation with an AR planner, a block-diffusion refiner,
    validators and AR fallback.

    Settings come from HYBRIDGEN_* environment variables (see the README). With none set,
    everything runs embedded: SQLite database and broker under the user data folder.
    """


for command in (db, submit, worker, run, status, export, serve, users, tokens, reap):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(prog_name="hybridgen", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
