"""`hybridgen db upgrade|downgrade|current`: schema migrations (Alembic)."""

from __future__ import annotations

import click

from hybridgen.context import CliContext, safe_url
from migrations import runner


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Create or upgrade the database schema to REVISION (default: latest)."""
    ctx = CliContext.from_env()
    url = ctx.settings.resolved_database_url
    runner.upgrade(url, revision)
    click.echo(f"database {safe_url(url)} at revision {runner.current_revision(url)}")


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (`base` removes every table)."""
    ctx = CliContext.from_env()
    url = ctx.settings.resolved_database_url
    runner.downgrade(url, revision)
    click.echo(f"database {safe_url(url)} at revision {runner.current_revision(url) or 'base'}")


@db.command()
def current() -> None:
    """Print the database's schema revision and the latest one."""
    ctx = CliContext.from_env()
    url = ctx.settings.resolved_database_url
    click.echo(f"current: {runner.current_revision(url) or 'empty'}; latest: {runner.head_revision()}")
