"""`hybridgen tokens create|revoke|list`: API tokens for /api (only their hashes are stored)."""

from __future__ import annotations

import click

from hybridgen.context import CliContext
from service.accounts import AccountError, create_token, list_tokens, revoke_token


@click.group()
def tokens() -> None:
    """Manage API tokens."""


@tokens.command()
@click.option("--user", "username", required=True, help="The user the token acts as.")
@click.option("--name", default="", help="A label to tell tokens apart (e.g. the client system).")
def create(username: str, name: str) -> None:
    """Create a token and print it. It is shown only this once; store it in the client's secrets."""
    ctx = CliContext.from_env()
    try:
        with ctx.sessions().begin() as session:
            issued = create_token(session, username, name)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"token {issued.id} ({issued.name}) for {issued.username}; send it as "
               "`Authorization: Bearer <token>`:", err=True)
    click.echo(issued.token)


@tokens.command()
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (see `tokens list`); requests with it fail from now on."""
    ctx = CliContext.from_env()
    try:
        with ctx.sessions().begin() as session:
            revoke_token(session, token_id)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"token {token_id} revoked")


@tokens.command(name="list")
def list_cmd() -> None:
    """List tokens: id, user, name, prefix, created, last used, status (tab-separated, with a header row)."""
    ctx = CliContext.from_env()
    with ctx.sessions()() as session:
        click.echo("\t".join(("id", "user", "name", "prefix", "created", "last used", "status")))
        for t in list_tokens(session):
            click.echo("\t".join([
                str(t.id), t.user.username, t.name, t.prefix + "…", f"{t.created_at:%Y-%m-%d}",
                f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
                f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active",
            ]))
