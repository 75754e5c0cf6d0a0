"""`create_app(settings)`: the one ASGI app `hybridgen serve` runs: /api, /admin and /health."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware

from hybridgen import __version__
from hybridgen.admin import WRITE_PATHS, mount_admin
from hybridgen.admin.csrf import AdminWriteGuard
from hybridgen.admin.ratelimit import FailureWindow
from hybridgen.admin.services import AppServices, celery_enqueue
from hybridgen.api.auth import require_token_or_admin
from hybridgen.api.routes import router
from pipeline.settings import Settings
from pipeline.storage.db import session_factory

SESSION_MAX_AGE_S = 12 * 3600


def create_app(settings: Settings, services: AppServices | None = None) -> FastAPI:
    services = services or AppServices(
        settings=settings,
        sessions=session_factory(settings.resolved_database_url),
        enqueue=celery_enqueue(settings),
    )
    # The default /docs and /openapi.json would answer anyone; ours below need a token or a login.
    app = FastAPI(title="hybridgen", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Batch content generation: submit jobs, follow progress, export results.")
    app.state.services = services
    app.include_router(router)
    mount_admin(app, services, FailureWindow(settings.login_attempts_per_minute))

    @app.get("/health", tags=["health"])
    def health() -> JSONResponse:
        """Liveness and database reachability; the only route that needs no login or token."""
        try:
            with services.sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception as e:  # noqa: BLE001
            return JSONResponse({"status": "unavailable", "database": type(e).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=[Depends(require_token_or_admin)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False, dependencies=[Depends(require_token_or_admin)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="hybridgen API")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)

    # Outermost first: the write guard runs before any admin endpoint sees the request.
    app.add_middleware(AdminWriteGuard, prefix="/admin", allowed=WRITE_PATHS)
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie="hybridgen_session",
                       max_age=SESSION_MAX_AGE_S, same_site="lax", https_only=settings.secure_cookies)
    return app


def session_secret(settings: Settings) -> str:
    """HYBRIDGEN_SECRET_KEY, or a random key created once and kept in DATA_DIR/secret_key (mode 600)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir).expanduser() / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


def app_from_env() -> FastAPI:
    """uvicorn factory for `hybridgen serve` (each server process builds its app from the environment)."""
    return create_app(Settings.from_env())
