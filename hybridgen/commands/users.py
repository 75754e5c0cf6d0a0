"""`hybridgen users create|passwd|disable|enable|list`: admin accounts of the review app."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from hybridgen.context import CliContext
from service.accounts import AccountError, create_user, set_disabled, set_password
from service.storage.models import User


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.UsageError("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask for a password; pipe it in with --password-stdin")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@click.group()
def users() -> None:
    """Manage admin users (they log in to /admin and own API tokens)."""


@users.command()
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def create(username: str, password_stdin: bool) -> None:
    """Create admin USERNAME; asks for the password (at least 8 characters)."""
    ctx = CliContext.from_env()
    password = read_password(password_stdin)
    try:
        with ctx.sessions().begin() as session:
            user = create_user(session, username, password)
            click.echo(f"created admin user {user.username!r} (id {user.id})")
    except AccountError as e:
        raise click.ClickException(str(e)) from None


@users.command()
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def passwd(username: str, password_stdin: bool) -> None:
    """Set a new password for USERNAME (their review-app sessions end)."""
    ctx = CliContext.from_env()
    password = read_password(password_stdin)
    try:
        with ctx.sessions().begin() as session:
            set_password(session, username, password)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"password of {username!r} changed")


def _set_disabled(username: str, disabled: bool) -> None:
    ctx = CliContext.from_env()
    try:
        with ctx.sessions().begin() as session:
            set_disabled(session, username, disabled)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"user {username!r} {'disabled' if disabled else 'enabled'}")


@users.command()
@click.argument("username")
def disable(username: str) -> None:
    """Lock USERNAME out of the review app and the API (their sessions end, their tokens stop working)."""
    _set_disabled(username, True)


@users.command()
@click.argument("username")
def enable(username: str) -> None:
    """Let a disabled USERNAME in again."""
    _set_disabled(username, False)


@users.command(name="list")
def list_users() -> None:
    """List users: id, username, active or disabled, created (tab-separated, with a header row)."""
    ctx = CliContext.from_env()
    with ctx.sessions()() as session:
        click.echo("\t".join(("id", "username", "status", "created")))
        for u in session.execute(select(User).order_by(User.id)).scalars():
            click.echo(f"{u.id}\t{u.username}\t{'disabled' if u.disabled else 'active'}\t{u.created_at:%Y-%m-%d}")
