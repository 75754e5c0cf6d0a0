"""`create_app(settings)`: the one ASGI app `hybridgen serve` runs: /api, /admin and /health."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import text
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.staticfiles import StaticFiles

from hybridgen import __version__
from hybridgen.admin import WRITE_PATHS, mount_admin
from hybridgen.admin.csrf import AdminWriteGuard
from hybridgen.admin.device_cookie import DeviceCookies
from hybridgen.admin.ratelimit import LoginThrottle
from hybridgen.admin.services import AppServices, celery_enqueue
from hybridgen.api.auth import require_token_or_admin
from hybridgen.api.docs import SWAGGER_ASSETS, add_docs_route
from hybridgen.api.metrics_routes import router as metrics_router
from hybridgen.api.routes import router
from hybridgen.relative_redirects import make_redirects_relative
from hybridgen.response_headers import EditResponseHeaders
from hybridgen.security_headers import add_security_headers
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.files import write_private_text

SESSION_MAX_AGE_S = 12 * 3600
STATIC = Path(__file__).resolve().parent / "static"


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
    secret = session_secret(settings)
    app.state.login_throttle = LoginThrottle(settings.login_attempts_per_minute)
    app.include_router(router)
    app.include_router(metrics_router)
    mount_static(app)
    mount_admin(app, services, app.state.login_throttle, DeviceCookies(secret, settings.secure_cookies))

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

    add_docs_route(app)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=307)

    # Each add_middleware wraps what was added before, so the last one added sees a request first:
    # security headers (on every answer, refusals too), the host check, relative redirects, the
    # session, and the write guard before any admin endpoint.
    app.add_middleware(AdminWriteGuard, prefix="/admin", allowed=WRITE_PATHS)
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="hybridgen_session",
                       max_age=SESSION_MAX_AGE_S, same_site="lax", https_only=settings.secure_cookies)
    app.add_middleware(EditResponseHeaders, edit=make_redirects_relative)
    if settings.allowed_host_list:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_host_list)
    app.add_middleware(EditResponseHeaders, edit=add_security_headers)
    return app


def mount_static(app: FastAPI) -> None:
    """Public, read-only assets: Swagger UI's and the pages' own scripts and styles (code, no data).
    Files, not inline code, so that the Content-Security-Policy can forbid inline script and style."""
    app.mount("/static/swagger-ui", StaticFiles(directory=SWAGGER_ASSETS), name="swagger-ui")
    app.mount("/static/hybridgen", StaticFiles(directory=STATIC), name="hybridgen-static")


def session_secret(settings: Settings) -> str:
    """HYBRIDGEN_SECRET_KEY, or a random key created once and kept in DATA_DIR/secret_key (mode 600)."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir).expanduser() / "secret_key"
    if not path.exists():
        write_private_text(path, secrets.token_urlsafe(48))
    return path.read_text().strip()


def app_from_env() -> FastAPI:
    """uvicorn factory for `hybridgen serve` (each server process builds its app from the environment)."""
    return create_app(Settings.from_env())
