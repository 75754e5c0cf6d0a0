"""Admin login: username + scrypt-hashed password, a signed session cookie that the server can end,
failed-login throttling.

The session cookie is signed, not stored, so "ending" a session means making it stale: login
stamps the user's `session_version` into it, and logout, a password change or disabling the user
raise that number (service.accounts.end_sessions). Every request re-reads the user, so an old copy
of the cookie stops working at once, on every browser.
"""

from __future__ import annotations

import logging

from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hybridgen.admin.csrf import csrf_token
from hybridgen.admin.device_cookie import DeviceCookies
from hybridgen.admin.ratelimit import LoginThrottle
from service.accounts import authenticate_user, end_sessions, normalize_username, session_user
from service.storage.models import User

log = logging.getLogger(__name__)

USER_ID, USERNAME, VERSION = "user_id", "username", "session_version"


def logged_in_admin(sessions: sessionmaker[Session], request: Request) -> bool:
    """Whether the request's session belongs to an enabled admin and was not ended since (blocking)."""
    user_id = request.session.get(USER_ID)
    if not user_id:
        return False
    with sessions() as session:
        return session_user(session, user_id, request.session.get(VERSION)) is not None


class AdminAuth(AuthenticationBackend):
    def __init__(self, sessions: sessionmaker[Session], throttle: LoginThrottle, devices: DeviceCookies):
        # Not calling super().__init__: it would add a second session middleware. The one
        # session middleware sits on the whole app (hybridgen.app), not only under /admin,
        # so that the API docs can also recognise a logged-in admin.
        self.middlewares = []
        self.sessions = sessions
        self.throttle = throttle
        self.devices = devices

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        username = normalize_username(str(form.get("username", ""))[:100])
        password = str(form.get("password", ""))[:1000]
        client = request.client.host if request.client else "unknown"
        device = self.devices.device_for(request, username)
        keys = self.throttle.keys(username, client, device)
        wait = self.throttle.retry_after(*keys)
        if wait > 0:
            log.warning("login for %r from %s refused: too many failures", username, client)
            return HTMLResponse(
                f"Too many failed logins. Try again in {int(wait) + 1} seconds.",
                status_code=429, headers={"Retry-After": str(int(wait) + 1)},
            )
        user = await run_in_threadpool(self._check, username, password)
        if user is None:
            self.throttle.record_failure(*keys)
            return False
        self.throttle.reset(keys[1])  # the name's (or this browser's) count; never the address's
        request.session.clear()  # a fresh session on login: no fixation
        request.session.update({USER_ID: user.id, USERNAME: user.username, VERSION: user.session_version})
        csrf_token(request)
        # A reviewer lands on the review queue, with how many items wait (sqladmin's index is empty).
        response = RedirectResponse(request.url_for("admin:view-review_queue").path, status_code=302)
        self.devices.remember(response, username, device)
        return response

    def _check(self, username: str, password: str) -> User | None:
        with self.sessions() as session:
            user = authenticate_user(session, username, password)
            if user is None or not user.is_admin:
                return None
            session.expunge(user)
            return user

    async def logout(self, request: Request) -> Response | bool:
        """End this user's sessions everywhere (the cookie alone cannot be revoked), then this one."""
        user_id = request.session.get(USER_ID)
        if user_id:
            await run_in_threadpool(self._end_sessions, user_id, request.session.get(VERSION))
        request.session.clear()
        return RedirectResponse(request.url_for("admin:login").path, status_code=302)

    def _end_sessions(self, user_id: object, version: object) -> None:
        with self.sessions.begin() as session:
            user = session_user(session, user_id, version)
            if user is not None:  # a stale cookie cannot log the user out of their current sessions
                end_sessions(user)

    async def authenticate(self, request: Request) -> Response | bool:
        if await run_in_threadpool(logged_in_admin, self.sessions, request):
            return True
        if USER_ID in request.session:
            request.session.clear()  # an ended session: drop it from the browser too
        return False
