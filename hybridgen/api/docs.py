"""/api/docs: Swagger UI served from this machine.

FastAPI's default page loads Swagger UI from a CDN at a floating version with no integrity check:
blank on a host without internet, and whatever the CDN serves runs with a logged-in admin's
cookies. Here the assets come from the `fastapi-offline` package (the Swagger UI 5 build it ships,
installed with hybridgen), the page has no inline script (hybridgen/static/swagger-init.js starts
it), and everything is same-origin, as the Content-Security-Policy requires.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from starlette.requests import Request

from hybridgen.api.auth import require_token_or_admin

SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""Mounted by hybridgen.app at /static/swagger-ui (name "swagger-ui")."""
OPENAPI_URL = "/api/openapi.json"


def add_docs_route(app: FastAPI) -> None:
    @app.get("/api/docs", include_in_schema=False, dependencies=[Depends(require_token_or_admin)])
    def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_page(request, app.title))


def docs_page(request: Request, title: str) -> str:
    def asset(name: str, path: str) -> str:
        return escape(request.url_for(name, path=path).path)

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{escape(title)} API</title>
<link rel="stylesheet" href="{asset('swagger-ui', 'swagger-ui.css')}">
<link rel="icon" href="{asset('swagger-ui', 'favicon.png')}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(OPENAPI_URL)}"></div>
<script src="{asset('swagger-ui', 'swagger-ui-bundle.js')}"></script>
<script src="{asset('hybridgen-static', 'swagger-init.js')}"></script>
</body>
</html>
"""
