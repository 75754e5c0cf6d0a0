"""The review queue: one flagged, not-reviewed item after another, in the list's filter.

- GET /admin/review: the landing page after login, with how many items wait (by kind and validator).
- GET /admin/review/next?<filter>[&after=ID]: the oldest waiting item (after ID), as a 303 to its page.
- GET /admin/review/previous?<filter>&before=ID: the newest waiting item before ID.

The filter travels in the query string (the list's own parameters, see service.review_list), so the
item page, its decisions (the hidden `queue` field of each form), the edit page and "Back to items"
all keep it. These pages only read; decisions stay CSRF-checked POSTs (review_pages.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode

from sqladmin import BaseView, expose
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hybridgen.admin.csrf import FORM_FIELD, csrf_token
from hybridgen.admin.services import AppServices
from service.review_list import ItemFilter, queue_breakdown, queue_count, queue_next, queue_previous
from service.storage.types import parse_id

QUEUE_PATH = "/review"
QUEUE_FIELD = "queue"
"""The form field that carries the filter (as a query string) through a decision."""


def request_filter(request: Request) -> ItemFilter:
    return ItemFilter.from_params(request.query_params)


def filter_from_field(raw: str) -> ItemFilter:
    """The filter a form carried in its `queue` field ("status=flagged&kind=product")."""
    return ItemFilter.from_params(dict(parse_qsl(raw[:2000])))


def with_query(url: Any, params: Mapping[str, Any]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}?{query}" if query else str(url)


def item_url(request: Request, item_id: int, flt: ItemFilter) -> str:
    return with_query(request.url_for("admin:details", identity="item", pk=item_id).path, flt.params())


def queue_url(request: Request, flt: ItemFilter) -> str:
    return with_query(request.url_for("admin:view-review_queue").path, flt.params())


def list_url(request: Request, flt: ItemFilter) -> str:
    return with_query(request.url_for("admin:list", identity="item").path, flt.params())


@dataclass
class QueueContext:
    """What the item page needs to move through the queue without losing the filter."""

    filter: ItemFilter
    field_value: str
    """The filter as a query string, for the decision forms' `queue` field."""
    waiting: int
    next_url: str
    previous_url: str
    back_url: str
    edit_url: str
    queue_url: str


def queue_context(request: Request, services: AppServices, item_id: int) -> QueueContext:
    """(blocking) The queue around `item_id` in the request's filter."""
    flt = request_filter(request)
    with services.sessions() as session:
        waiting = queue_count(session, flt)
    params = flt.params()
    return QueueContext(
        filter=flt, field_value=urlencode(params), waiting=waiting,
        next_url=with_query(request.url_for("admin:view-review_next").path, {**params, "after": item_id}),
        previous_url=with_query(request.url_for("admin:view-review_previous").path, {**params, "before": item_id}),
        back_url=list_url(request, flt),
        edit_url=with_query(request.url_for("admin:view-review_edit", pk=item_id).path, params),
        queue_url=queue_url(request, flt),
    )


def next_item_response(request: Request, services: AppServices, flt: ItemFilter, after: int | None) -> Response:
    """(blocking) A 303 to the queue's next item after `after`, or to the queue page when none waits."""
    with services.sessions() as session:
        found = queue_next(session, flt, after)
    target = item_url(request, found, flt) if found is not None else queue_url(request, flt)
    return RedirectResponse(target, status_code=303)


class QueuePages(BaseView):
    services: AppServices
    name = "Review queue"
    icon = "fa-solid fa-list-check"

    @expose(QUEUE_PATH, methods=["GET"], identity="review_queue")
    async def queue(self, request: Request) -> Response:
        flt = request_filter(request)
        counts = await run_in_threadpool(self._counts, flt)
        params = flt.params()
        return await self.templates.TemplateResponse(request, "hybridgen/review_queue.html", {
            "title": "Review queue", "filter": flt, "filter_params": params, **counts,
            "start_url": with_query(request.url_for("admin:view-review_next").path, params),
            "next_url_for": lambda **extra: with_query(request.url_for("admin:view-review_next").path,
                                                         {**params, **extra}),
            "back_url": list_url(request, flt), "queue_field": urlencode(params),
            "csrf_token": csrf_token(request), "form_field": FORM_FIELD,
        })

    @expose(QUEUE_PATH + "/next", methods=["GET"], identity="review_next")
    async def next(self, request: Request) -> Response:
        after = parse_id(request.query_params.get("after", ""))
        return await run_in_threadpool(next_item_response, request, self.services, request_filter(request), after)

    @expose(QUEUE_PATH + "/previous", methods=["GET"], identity="review_previous")
    async def previous(self, request: Request) -> Response:
        flt = request_filter(request)
        before = parse_id(request.query_params.get("before", ""))
        found = await run_in_threadpool(self._previous, flt, before)
        target = item_url(request, found, flt) if found is not None else queue_url(request, flt)
        return RedirectResponse(target, status_code=303)

    def _previous(self, flt: ItemFilter, before: int | None) -> int | None:
        with self.services.sessions() as session:
            return queue_previous(session, flt, before) if before is not None else queue_next(session, flt)

    def _counts(self, flt: ItemFilter) -> dict[str, Any]:
        with self.services.sessions() as session:
            return {"waiting": queue_count(session, flt), "breakdown": queue_breakdown(session, flt)}
