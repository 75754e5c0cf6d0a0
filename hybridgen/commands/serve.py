"""`hybridgen serve`: the HTTP API (/api) and the review app (/admin) in one process."""

from __future__ import annotations

import click

from hybridgen.context import CliContext
from pipeline.settings import Settings


def proxy_options(settings: Settings) -> dict:
    """uvicorn's proxy-header options: X-Forwarded-For / -Proto are believed only from the proxies
    HYBRIDGEN_FORWARDED_ALLOW_IPS names. uvicorn's own default trusts 127.0.0.1, so any local
    process, or a local proxy that passes the header through, could pick the client address that
    the login limits count on."""
    allowed = ",".join(a.strip() for a in settings.forwarded_allow_ips.split(",") if a.strip())
    return {"proxy_headers": True, "forwarded_allow_ips": allowed} if allowed else {"proxy_headers": False}


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: HYBRIDGEN_SERVE_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default: HYBRIDGEN_SERVE_PORT, 8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes. Above 1, set HYBRIDGEN_SECRET_KEY so they share admin sessions.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API and the admin review app.

    Create the first admin with `hybridgen users create NAME` and an API token with
    `hybridgen tokens create --user NAME`; then open http://HOST:PORT/admin/.
    """
    import uvicorn

    ctx = CliContext.from_env()
    ctx.sessions()  # migrate the embedded database / check a configured one before listening
    host = host or ctx.settings.serve_host
    port = port or ctx.settings.serve_port
    if workers > 1 and not ctx.settings.secret_key:
        raise click.UsageError("--workers above 1 needs HYBRIDGEN_SECRET_KEY (each process would sign "
                               "sessions with its own key otherwise)")
    click.echo(f"hybridgen: API at http://{host}:{port}/api/docs, review app at http://{host}:{port}/admin/",
               err=True)
    uvicorn.run("hybridgen.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=ctx.settings.log_level.lower(), **proxy_options(ctx.settings))
