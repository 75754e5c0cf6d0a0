"""Admin login: username + scrypt-hashed password, a signed session cookie, failed-login limits."""

from __future__ import annotations

import logging

from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hybridgen.admin.csrf import csrf_token
from hybridgen.admin.ratelimit import FailureWindow
from pipeline.accounts import authenticate_user
from pipeline.storage.models import User

log = logging.getLogger(__name__)


class AdminAuth(AuthenticationBackend):
    def __init__(self, sessions: sessionmaker[Session], limiter: FailureWindow):
        # Not calling super().__init__: it would add a second session middleware. The one
        # session middleware sits on the whole app (hybridgen.app), not only under /admin,
        # so that the API docs can also recognise a logged-in admin.
        self.middlewares = []
        self.sessions = sessions
        self.limiter = limiter

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        username = str(form.get("username", ""))[:100]
        password = str(form.get("password", ""))[:1000]
        client = request.client.host if request.client else "unknown"
        keys = (f"user:{username.lower()}", f"ip:{client}")
        wait = self.limiter.retry_after(*keys)
        if wait > 0:
            log.warning("login for %r from %s refused: too many failures", username, client)
            return HTMLResponse(
                f"Too many failed logins. Try again in {int(wait) + 1} seconds.",
                status_code=429, headers={"Retry-After": str(int(wait) + 1)},
            )
        user = await run_in_threadpool(self._check, username, password)
        if user is None:
            self.limiter.record_failure(*keys)
            return False
        self.limiter.reset(keys[0])
        request.session.clear()  # a fresh session on login: no fixation
        request.session.update({"user_id": user[0], "username": user[1]})
        csrf_token(request)
        return True

    def _check(self, username: str, password: str) -> tuple[int, str] | None:
        with self.sessions() as session:
            user = authenticate_user(session, username, password)
            return (user.id, user.username) if user and user.is_admin else None

    async def logout(self, request: Request) -> Response | bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> Response | bool:
        user_id = request.session.get("user_id")
        if not user_id:
            return False
        # Disabled or deleted users lose access at once, not when their cookie expires.
        return await run_in_threadpool(self._still_enabled, int(user_id))

    def _still_enabled(self, user_id: int) -> bool:
        with self.sessions() as session:
            user = session.get(User, user_id)
            return bool(user and user.is_admin and not user.disabled)

