"""CSRF protection for the review app.

Two layers, because sqladmin itself has none:
- every state-changing request under /admin must come from our own pages: a cross-origin
  `Origin` header is refused, and only the allow-listed endpoints accept unsafe methods at all
  (sqladmin's own create/edit/delete/import endpoints are switched off here as well as in the views);
- the review endpoints also require the session's CSRF token in the form (synchroniser token).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def token_is_valid(request: Request, submitted: str | None) -> bool:
    expected = request.session.get(SESSION_KEY)
    return bool(expected and submitted and hmac.compare_digest(str(expected), str(submitted)))


class AdminWriteGuard:
    """ASGI middleware: unsafe requests under `prefix` only to `allowed` paths, same origin only."""

    def __init__(self, app: ASGIApp, prefix: str, allowed: set[str]):
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS and (
            scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/")
        ):
            problem = self._problem(scope)
            if problem:
                await PlainTextResponse(problem, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        if scope["path"] not in self.allowed:
            return f"{scope['method']} {scope['path']} is not allowed: the review app changes data only " \
                   "through its review actions"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != headers.get("host", ""):
            return f"cross-origin request from {origin} refused"
        if origin == "null":
            return "request from an opaque origin refused"
        return None
