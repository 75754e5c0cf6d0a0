"""Which of sqladmin's own routes the review app keeps, and the one it replaces.

- Routes that read a column as a file path are removed: sqladmin's `/{identity}/{pk}/{column}/
  download/` and `/preview/` serve the file that any string column names, relative to the server's
  working directory, so a batch named `data/secret_key` (the API lets its user name batches) would
  download the session key, and one named after the SQLite file the database. The review app stores
  no files. `ReadOnlyView.get_object_filepath` refuses as well, should a route come back.
- Logout becomes a CSRF-checked POST (GET shows a page with that form), so a link or an image on
  another site cannot log a reviewer out; it ends the session on the server (auth.py).
"""

from __future__ import annotations

from sqladmin import Admin
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hybridgen.admin.csrf import FORM_FIELD, csrf_token, token_is_valid

REMOVED_NAMES = {"file_download", "file_preview"}


def serves_files(route: BaseRoute) -> bool:
    path = getattr(route, "path", "")
    return getattr(route, "name", None) in REMOVED_NAMES or "{column_name}" in path \
        or path.endswith(("/download/", "/preview/"))


def harden_routes(admin: Admin) -> None:
    """Drop the file routes and put our logout in place of sqladmin's GET one."""
    logout = Route("/logout", endpoint=LogoutPage(admin).page, name="logout", methods=["GET", "POST"])
    admin.admin.router.routes = [logout if getattr(r, "name", None) == "logout" else r
                                 for r in admin.admin.router.routes if not serves_files(r)]


class LogoutPage:
    """GET: a page with a "Log out" button (sqladmin's menu links here). POST with the token: log out."""

    def __init__(self, admin: Admin):
        self.admin = admin

    async def page(self, request: Request) -> Response:
        auth = self.admin.authentication_backend
        if request.method == "GET":
            if not await auth.authenticate(request):
                return RedirectResponse(request.url_for("admin:login").path, status_code=302)
            return await self.admin.templates.TemplateResponse(request, "hybridgen/logout.html", {
                "csrf_token": csrf_token(request), "form_field": FORM_FIELD, "title": "Log out"})
        form = await request.form()
        if not token_is_valid(request, form.get(FORM_FIELD)):
            raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page and try again")
        return await auth.logout(request)
