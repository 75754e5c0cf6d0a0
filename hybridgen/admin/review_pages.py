"""The review app's write side: confirm and apply approve / reject / edit / requeue, and undo.

All changes arrive as POST /admin/review/decide or /admin/review/undo with the session's CSRF token,
so a link or a page on another site cannot make a logged-in reviewer change anything. A decision
made from an item page carries the list's filter (the `queue` field) and moves on to the queue's
next item in the same redirect: one keypress, one page load per decision.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqladmin import BaseView, expose
from sqladmin.flash import Flash
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hybridgen.admin.csrf import FORM_FIELD, csrf_token
from hybridgen.admin.queue_pages import (
    QUEUE_FIELD, filter_from_field, item_url, list_url, next_item_response, request_filter, with_query,
)
from hybridgen.admin.review_forms import checked_form, reviewer_by_id
from hybridgen.admin.services import AppServices
from hybridgen.words import plural
from service.review_list import ItemFilter, matching_ids
from service.reviews import ReviewError, review_items, undo_last
from service.storage.models import Item, Review, ReviewDecision
from service.storage.types import MAX_ID, parse_id

DECIDE_PATH = "/review/decide"
UNDO_PATH = "/review/undo"
MAX_BULK = 500
"""Items one bulk decision covers; "all matching" beyond it takes the oldest MAX_BULK and says so."""
CONFIRM_SHOWN = 50
NOTHING_SELECTED = ("No items selected. Tick the items to decide on, or tick the box at the top and "
                    "choose \"Select all matching\" to decide on every item the filter matches.")


def parse_pks(raw: str) -> list[int]:
    """"1,2,3" -> [1, 2, 3]; anything else is a 400 that says what was wrong."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        raise HTTPException(400, NOTHING_SELECTED)
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
        """The confirmation form of a bulk decision: the ticked items (`pks`), or with `all=1` every item
        the filter in the query matches (the oldest MAX_BULK of them)."""
        decision = request.query_params.get("decision", "")
        if decision not in {d.value for d in ReviewDecision} - {"edit", "use_attempt", "undo"}:
            raise HTTPException(400, f"unknown decision {decision!r}; expected approve, reject or requeue")
        flt = request_filter(request)
        context: dict[str, Any] = {
            "decision": decision, "filter_params": flt.params(), "next": list_url(request, flt),
            "csrf_token": csrf_token(request), "form_field": FORM_FIELD, "title": "Confirm",
            "all_matching": False, "matching": 0, "capped": False, "max_bulk": MAX_BULK, "shown": CONFIRM_SHOWN,
        }
        if request.query_params.get("all") == "1":
            pks, matching = await run_in_threadpool(self._matching, flt)
            context.update(all_matching=True, matching=matching, capped=matching > len(pks))
        else:
            try:
                pks = parse_pks(request.query_params.get("pks", ""))
            except HTTPException as e:  # shown in the layout, with the way back to the list
                return await self.templates.TemplateResponse(request, "hybridgen/review_confirm.html", {
                    **context, "error": e.detail, "items": [], "pks": ""}, status_code=400)
        if not pks:
            return await self.templates.TemplateResponse(request, "hybridgen/review_confirm.html", {
                **context, "error": "No item matches this filter.", "items": [], "pks": ""}, status_code=400)
        items = await run_in_threadpool(self._items, pks[:CONFIRM_SHOWN])
        return await self.templates.TemplateResponse(request, "hybridgen/review_confirm.html", {
            **context, "items": items, "count": len(pks), "pks": ",".join(map(str, pks))})

    # Not /review/edit/{pk}: sqladmin's own /{identity}/edit/{pk} route would match it first.
    @expose("/review/item/{pk}/edit", methods=["GET"], identity="review_edit")
    async def edit(self, request: Request) -> Response:
        pk = parse_id(request.path_params.get("pk", ""))
        items = await run_in_threadpool(self._items, [pk]) if pk is not None else []
        if not items:
            raise HTTPException(404, f"no item with id {str(request.path_params.get('pk'))[:40]!r}")
        flt = request_filter(request)
        return await self.templates.TemplateResponse(request, "hybridgen/review_edit.html", {
            "item": items[0], "csrf_token": csrf_token(request), "form_field": FORM_FIELD,
            # The queue's filter: a save that carries it moves on to the next item (see decide).
            "queue_field": QUEUE_FIELD, "queue_value": urlencode(flt.params()), "item_url": item_url(request, pk, flt),
            "next": with_query(request.url_for("admin:view-review_next").path, {**flt.params(), "after": pk}),
        })

    @expose(DECIDE_PATH, methods=["POST"], identity="review_decide")
    async def decide(self, request: Request) -> Response:
        form = await checked_form(request)
        decision = str(form.get("decision", ""))
        if decision not in {d.value for d in ReviewDecision} - {"undo"}:
            raise HTTPException(400, f"unknown decision {decision!r}")
        pks = parse_pks(str(form.get("pks", "")))
        note = str(form.get("note", "")).strip() or None
        edited = form.get("edited_output")
        attempt_id = parse_id(form.get("attempt_id", "")) if form.get("attempt_id") else None
        in_queue = QUEUE_FIELD in form
        flt = filter_from_field(str(form.get(QUEUE_FIELD, ""))) if in_queue else ItemFilter()
        try:
            outcome = await run_in_threadpool(self._apply, pks, decision, int(request.session["user_id"]), note,
                                              None if edited is None else str(edited), attempt_id)
        except ReviewError as e:
            Flash.error(request, str(e), title="Not saved")
            back = request.url_for("admin:view-review_edit", pk=pks[0]).path if decision == "edit" \
                else request.url_for("admin:details", identity="item", pk=pks[0]).path
            return RedirectResponse(with_query(back, flt.params()), status_code=303)
        queued = self.services.try_enqueue(outcome.requeued)
        message = f"{decision}: {plural(len(outcome.applied), 'item')}"
        if len(pks) == 1 and outcome.applied:
            message = f"{decision}: item #{pks[0]} (u undoes it)"
        if outcome.skipped:
            message += "; skipped " + "; ".join(f"#{i}: {why}" for i, why in list(outcome.skipped.items())[:5])
        if outcome.requeued and not queued:
            message += " (the queue is unreachable; the reaper will queue them)"
        (Flash.success if outcome.applied else Flash.warning)(request, message, title="Review saved")
        if in_queue and len(pks) == 1:
            return await run_in_threadpool(next_item_response, request, self.services, flt, pks[0])
        fallback = item_url(request, pks[0], flt) if len(pks) == 1 else list_url(request, flt)
        return RedirectResponse(safe_next(str(form.get("next", "")), fallback), status_code=303)

    @expose(UNDO_PATH, methods=["POST"], identity="review_undo")
    async def undo(self, request: Request) -> Response:
        """Take back this reviewer's latest decision and show that item again (in the same filter)."""
        form = await checked_form(request)
        flt = filter_from_field(str(form.get(QUEUE_FIELD, "")))
        try:
            item_id, decision = await run_in_threadpool(self._undo, int(request.session["user_id"]))
        except ReviewError as e:
            Flash.warning(request, str(e), title="Nothing undone")
            fallback = request.url_for("admin:view-review_queue").path
            return RedirectResponse(safe_next(str(form.get("back", "")), fallback), status_code=303)
        Flash.success(request, f"undid {decision} of item #{item_id}", title="Undone")
        return RedirectResponse(item_url(request, item_id, flt), status_code=303)

    def _apply(self, pks: list[int], decision: str, user_id: int, note: str | None, edited: str | None,
               attempt_id: int | None = None):
        with self.services.sessions.begin() as session:
            return review_items(session, pks, decision, reviewer_by_id(session, user_id), note=note,
                                edited_output=edited, attempt_id=attempt_id)

    def _undo(self, user_id: int) -> tuple[int, str]:
        with self.services.sessions.begin() as session:
            review = undo_last(session, reviewer_by_id(session, user_id))
            undone = session.get(Review, review.undoes_id)
            return review.item_id, undone.decision if undone is not None else "decision"

    def _matching(self, flt: ItemFilter) -> tuple[list[int], int]:
        with self.services.sessions() as session:
            return matching_ids(session, flt, limit=MAX_BULK)

    def _items(self, pks: list[int]) -> list[dict[str, Any]]:
        with self.services.sessions() as session:
            rows = session.execute(select(Item).where(Item.id.in_(pks)).order_by(Item.id)).scalars()
            return [{"id": i.id, "kind": i.kind, "status": i.status, "review_status": i.review_status,
                     "output": i.edited_output if i.edited_output is not None else (i.output or "")}
                    for i in rows]

