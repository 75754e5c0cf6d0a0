"""Security headers on every response of `hybridgen serve`.

The Content-Security-Policy allows scripts, styles, fonts and fetches from this origin only, and
no inline script or style at all: the review app's and the API docs' own code lives in
hybridgen/static, sqladmin's in its statics, Swagger UI's in the fastapi-offline package. So a
reviewer's browser runs no script that generated content or a stored value could smuggle into a
page, even if escaping were ever missed. `img-src data:` is for the icons the CSS frameworks
inline. Framing is refused twice (frame-ancestors and X-Frame-Options, for older browsers):
the review buttons cannot be clickjacked.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import Scope

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def add_security_headers(headers: MutableHeaders, scope: Scope) -> None:
    """HEADERS on a response that does not set them itself (for EditResponseHeaders)."""
    for name, value in HEADERS.items():
        if name not in headers:
            headers[name] = value
