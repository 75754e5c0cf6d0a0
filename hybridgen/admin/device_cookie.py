"""The "known browser" cookie of the login throttle (see ratelimit.py).

After a successful login the browser gets a signed cookie naming the user and a random device id.
Later logins from that browser as that user are throttled per device instead of on the username's
shared allowance, so an attacker hammering a name elsewhere does not lock its real user out. The
cookie grants nothing by itself (it is only sent to the login form, and a password is still needed);
a stolen one is worth one device's allowance.
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "hybridgen_device"
MAX_AGE_S = 90 * 24 * 3600
PATH = "/admin/login"


class DeviceCookies:
    def __init__(self, secret: str, secure: bool):
        self._signer = URLSafeTimedSerializer(secret, salt="hybridgen-login-device")
        self.secure = secure

    def device_for(self, request: Request, username: str) -> str | None:
        """The device id of this browser if it logged in as `username` before (signature and age checked)."""
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 500:
            return None
        try:
            user, device = self._signer.loads(raw, max_age=MAX_AGE_S)
        except (BadSignature, ValueError, TypeError):
            return None
        return device if user == username and isinstance(device, str) else None

    def remember(self, response: Response, username: str, device: str | None) -> None:
        """Set (or renew) the cookie after a successful login as `username`."""
        value = self._signer.dumps([username, device or secrets.token_urlsafe(16)])
        response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, path=PATH, httponly=True, samesite="strict",
                            secure=self.secure)
