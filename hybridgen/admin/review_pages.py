"""The review app's write side: confirm and apply approve / reject / edit / requeue.

All changes arrive as POST /admin/review/decide with the session's CSRF token, so a link or a
page on another site cannot make a logged-in reviewer change anything.
"""

from __future__ import annotations

from typing import Any

from sqladmin import BaseView, expose
from sqladmin.flash import Flash
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hybridgen.admin.csrf import FORM_FIELD, csrf_token, token_is_valid
from hybridgen.admin.services import AppServices
from hybridgen.words import plural
from service.reviews import ReviewError, review_items
from service.storage.models import Item, ReviewDecision, User
from service.storage.types import MAX_ID, parse_id

DECIDE_PATH = "/review/decide"
MAX_BULK = 500


def parse_pks(raw: str) -> list[int]:
    """"1,2,3" -> [1, 2, 3]; anything else is a 400 that says what was wrong."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        raise HTTPException(400, "no items selected")
    if len(parts) > MAX_BULK:
        raise HTTPException(400, f"{len(parts)} items selected; at most {MAX_BULK} at once")
    bad = [p for p in parts if parse_id(p) is None]
    if bad:
        raise HTTPException(400, f"item ids must be whole numbers from 1 to {MAX_ID}; got {bad[0][:40]!r}")
    return [int(p) for p in parts]


def safe_next(raw: str | None, fallback: str) -> str:
    """Only redirect within the admin app (never to another site)."""
    if raw and raw.startswith("/admin/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return fallback


class ReviewPages(BaseView):
    services: AppServices
    name = "Review"
    identity = "review"

    def is_visible(self, request: Request) -> bool:  # reached from items, not from the menu
        return False

    @expose("/review/confirm", methods=["GET"], identity="review_confirm")
    async def confirm(self, request: Request) -> Response:
        decision = request.query_params.get("decision", "")
        if decision not in {d.value for d in ReviewDecision} - {"edit"}:
            raise HTTPException(400, f"unknown decision {decision!r}; expected approve, reject or requeue")
        pks = parse_pks(request.query_params.get("pks", ""))
        items = await run_in_threadpool(self._items, pks)
        return await self.templates.TemplateResponse(request, "hybridgen/review_confirm.html", {
            "decision": decision, "items": items, "pks": ",".join(map(str, pks)),
            "csrf_token": csrf_token(request), "form_field": FORM_FIELD,
            "next": str(request.url_for("admin:list", identity="item")),
        })

    # Not /review/edit/{pk}: sqladmin's own /{identity}/edit/{pk} route would match it first.
    @expose("/review/item/{pk}/edit", methods=["GET"], identity="review_edit")
    async def edit(self, request: Request) -> Response:
        pk = parse_id(request.path_params.get("pk", ""))
        items = await run_in_threadpool(self._items, [pk]) if pk is not None else []
        if not items:
            raise HTTPException(404, f"no item with id {str(request.path_params.get('pk'))[:40]!r}")
        return await self.templates.TemplateResponse(request, "hybridgen/review_edit.html", {
            "item": items[0], "csrf_token": csrf_token(request), "form_field": FORM_FIELD,
        })

    @expose(DECIDE_PATH, methods=["POST"], identity="review_decide")
    async def decide(self, request: Request) -> Response:
        form = await request.form()
        if not token_is_valid(request, form.get(FORM_FIELD)):
            raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page and try again")
        decision = str(form.get("decision", ""))
        if decision not in {d.value for d in ReviewDecision}:
            raise HTTPException(400, f"unknown decision {decision!r}")
        pks = parse_pks(str(form.get("pks", "")))
        note = str(form.get("note", "")).strip() or None
        edited = form.get("edited_output")
        try:
            outcome = await run_in_threadpool(self._apply, pks, decision, int(request.session["user_id"]), note,
                                              None if edited is None else str(edited))
        except ReviewError as e:
            Flash.error(request, str(e), title="Not saved")
            back = request.url_for("admin:view-review_edit", pk=pks[0]) if decision == "edit" \
                else request.url_for("admin:details", identity="item", pk=pks[0])
            return RedirectResponse(back, status_code=303)
        queued = self.services.try_enqueue(outcome.requeued)
        message = f"{decision}: {plural(len(outcome.applied), 'item')}"
        if outcome.skipped:
            message += "; skipped " + "; ".join(f"#{i}: {why}" for i, why in list(outcome.skipped.items())[:5])
        if outcome.requeued and not queued:
            message += " (the queue is unreachable; the reaper will queue them)"
        (Flash.success if outcome.applied else Flash.warning)(request, message, title="Review saved")
        fallback = str(request.url_for("admin:details", identity="item", pk=pks[0])) if len(pks) == 1 \
            else str(request.url_for("admin:list", identity="item"))
        return RedirectResponse(safe_next(str(form.get("next", "")), fallback), status_code=303)

    def _apply(self, pks: list[int], decision: str, user_id: int, note: str | None, edited: str | None):
        with self.services.sessions.begin() as session:
            reviewer = session.get(User, user_id)
            if reviewer is None or reviewer.disabled:
                raise HTTPException(403, "your account no longer exists or is disabled")
            return review_items(session, pks, decision, reviewer, note=note, edited_output=edited)

    def _items(self, pks: list[int]) -> list[dict[str, Any]]:
        with self.services.sessions() as session:
            rows = session.execute(select(Item).where(Item.id.in_(pks)).order_by(Item.id)).scalars()
            return [{"id": i.id, "kind": i.kind, "status": i.status, "review_status": i.review_status,
                     "output": i.edited_output if i.edited_output is not None else (i.output or "")}
                    for i in rows]
