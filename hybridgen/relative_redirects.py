"""Redirects that never carry the request's Host header back to the client.

Starlette's `url_for` (used by sqladmin for every redirect: to the login page, after login, after
logout) builds absolute URLs from the Host header, so a request with `Host: evil.example` was
answered `Location: http://evil.example/admin/login`. Behind a cache or a proxy that passes Host
through, that poisons links for others. `make_redirects_relative` (run on every response by
hybridgen.response_headers) rewrites any Location that points at the
request's own host to a relative one (path and query), which browsers resolve against the origin
they actually talked to. Locations to other hosts are left alone (the app sends none:
`review_pages.safe_next` keeps "next" inside /admin).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import Scope


def relative_location(location: str, host: str) -> str:
    parts = urlsplit(location)
    if parts.scheme in ("http", "https") and parts.netloc and parts.netloc.lower() == host.lower():
        return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    return location


def make_redirects_relative(headers: MutableHeaders, scope: Scope) -> None:
    """A Location pointing at the request's own host becomes relative (for EditResponseHeaders)."""
    if "location" in headers:
        host = Headers(scope=scope).get("host") or _server_netloc(scope)
        headers["location"] = relative_location(headers["location"], host)


def _server_netloc(scope: Scope) -> str:
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server else ""
