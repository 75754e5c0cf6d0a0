"""sqladmin views of the review app: item list and page, batches, attempts, reviews, users, tokens.

Every view is read-only as far as sqladmin is concerned (no create/edit/delete/import): the only
writes are review decisions, which go through `ReviewPages` (CSRF-checked) and `service.reviews`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from sqladmin import ModelView, action, expose
from sqladmin.pagination import Pagination
from sqlalchemy import Select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hybridgen.admin.batch_page import batch_page, export_options, list_link
from hybridgen.admin.csrf import csrf_token
from hybridgen.admin.filters import item_filters
from hybridgen.admin.item_page import item_page
from hybridgen.admin.queue_pages import QUEUE_FIELD, item_url, queue_context, request_filter, with_query
from hybridgen.admin.services import AppServices
from hybridgen.export_stream import export_download
from service.review_list import FilterError, ItemFilter, list_page, queue_count
from service.storage.models import ApiToken, Attempt, Batch, Item, Review, User
from service.storage.types import parse_id

TEMPLATES = Path(__file__).parent / "templates"
STATUS_COLOURS = {"done": "green", "flagged": "orange", "error": "red", "running": "blue", "queued": "secondary"}


def status_badge(status: str | None) -> Markup:
    if not status:
        return Markup("")
    return Markup('<span class="badge bg-{}-lt status-{}">{}</span>').format(
        STATUS_COLOURS.get(status, "secondary"), status, status)


class ReadOnlyView(ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    page_size = 50
    page_size_options = [25, 50, 100]

    # Every model here has one INTEGER id. sqladmin would hand any pk text to the driver: "abc"
    # fails to convert and 2**63 overflows, both as a 500. Anything that cannot be an id is no row.
    def details_query(self, request: Request) -> Select:
        checked_pk(request)
        return super().details_query(request)

    def form_edit_query(self, request: Request) -> Select:
        checked_pk(request)
        return super().form_edit_query(request)

    async def get_object_filepath(self, identifier: str, column_name: str):
        """No column here is a file (see hybridgen.admin.routes: the file routes are gone as well)."""
        raise HTTPException(404)

    def search_query(self, stmt: Select, term: str) -> Select:
        if "\x00" in term:  # PostgreSQL cannot compare text holding NUL (a 500 otherwise)
            raise HTTPException(422, "search: NUL characters (\\u0000) are not allowed")
        return super().search_query(stmt, term)


def checked_pk(request: Request) -> int:
    """The request's pk as a row id; a 404 when it cannot be one."""
    pk = parse_id(request.path_params.get("pk", ""))
    if pk is None:
        raise HTTPException(404, f"no row with id {str(request.path_params.get('pk'))[:40]!r}")
    return pk


class ItemAdmin(ReadOnlyView, model=Item):
    """The review list (filters, full-text search, a title and the flag message per row, bulk
    decisions over a page or everything the filter matches) and the item page (see item_details.html).
    Which items a filter means is `service.review_list.ItemFilter`'s to say, for the list and the queue."""

    services: AppServices
    name = "Item"
    name_plural = "Items"
    icon = "fa-solid fa-file-lines"
    column_list = [Item.id, Item.kind, Item.status, Item.review_status, Item.batch_id, Item.updated_at]
    column_labels = {Item.batch_id: "batch", Item.review_status: "review"}
    column_searchable_list = [Item.client_key]  # shows sqladmin's search box; list_page does the searching
    column_sortable_list = [Item.id, Item.batch_id, Item.status, Item.kind, Item.updated_at]
    column_default_sort = [(Item.id, True)]
    list_template = "hybridgen/item_list.html"
    details_template = "hybridgen/item_details.html"

    column_filters = item_filters()

    def search_placeholder(self) -> str:
        return "words, or a client key"

    async def list(self, request: Request) -> Pagination:
        page = self.validate_page_number(request.query_params.get("page"), 1)
        page_size = min(self.validate_page_number(request.query_params.get("pageSize"), self.page_size),
                        max(self.page_size_options))
        if page_size < 1:
            raise HTTPException(400, "pageSize: expected a whole number of at least 1")
        sort_by = request.query_params.get("sortBy")
        descending = request.query_params.get("sort", "desc" if sort_by is None else "asc") == "desc"
        result = await run_in_threadpool(self._list_page, request_filter(request), page, page_size,
                                         sort_by, descending)
        return Pagination(rows=result.rows, page=result.page, page_size=page_size, count=result.count)

    def _list_page(self, flt, page: int, page_size: int, sort_by: str | None, descending: bool):
        with self.services.sessions() as session:
            result = list_page(session, flt, page=page, page_size=page_size, sort_by=sort_by, descending=descending)
            session.expunge_all()
            return result

    async def list_context(self, request: Request) -> dict[str, Any]:
        flt = request_filter(request)
        waiting = await run_in_threadpool(self._waiting, flt)
        context: dict[str, Any] = {
            "filter_params": flt.params(), "waiting": waiting, "status_badge": status_badge,
            "queue_start": with_query(request.url_for("admin:view-review_next").path, flt.params()),
            "item_link": lambda item_id: item_url(request, item_id, flt),
        }
        try:  # a value the filter ignores is said so above the list, not silently dropped
            ItemFilter.from_params(request.query_params, strict=True)
        except FilterError as e:
            context["error"] = f"Filter ignored: {e}"
        return context

    def _waiting(self, flt) -> int:
        with self.services.sessions() as session:
            return queue_count(session, flt)

    async def details_context(self, request: Request) -> dict[str, Any]:
        item_id = checked_pk(request)
        page = await run_in_threadpool(self._load_page, item_id)
        queue = await run_in_threadpool(queue_context, request, self.services, item_id)
        return {"page": page, "csrf_token": csrf_token(request), "status_badge": status_badge, "queue": queue,
                "queue_field": QUEUE_FIELD}

    def _load_page(self, item_id: int):
        with self.services.sessions() as session:
            page = item_page(session, item_id)
            if page is not None:  # read everything the template touches while the session is open
                _ = page.item.batch.name
            session.expunge_all()
            return page

    def _confirm(self, request: Request, decision: str) -> Response:
        """To the confirmation form, keeping the list's filter: the ticked `pks`, or `all=1` (every item
        the filter matches, which the list's "Select all matching" asks for)."""
        params = {"decision": decision, **request_filter(request).params()}
        if request.query_params.get("all") == "1":
            params["all"] = "1"
        else:
            params["pks"] = request.query_params.get("pks", "")
        return RedirectResponse(f"{request.url_for('admin:view-review_confirm')}?{urlencode(params)}",
                                status_code=303)

    # Bulk actions from the list. They only lead to a confirmation form: the change itself is a
    # CSRF-checked POST (sqladmin's actions are plain GET links).
    @action(name="approve", label="Approve selected", add_in_detail=False)
    async def approve_selected(self, request: Request) -> Response:
        return self._confirm(request, "approve")

    @action(name="reject", label="Reject selected", add_in_detail=False)
    async def reject_selected(self, request: Request) -> Response:
        return self._confirm(request, "reject")

    @action(name="requeue", label="Requeue selected", add_in_detail=False)
    async def requeue_selected(self, request: Request) -> Response:
        return self._confirm(request, "requeue")


class BatchAdmin(ReadOnlyView, model=Batch):
    services: AppServices
    name = "Batch"
    name_plural = "Batches"
    icon = "fa-solid fa-layer-group"
    column_list = [Batch.id, Batch.name, Batch.mode, Batch.item_count, Batch.created_at]
    column_default_sort = [(Batch.id, True)]
    column_searchable_list = [Batch.name]
    details_template = "hybridgen/batch_details.html"

    async def details_context(self, request: Request) -> dict[str, Any]:
        """Progress, review progress, the items a page at a time, and the export (hybridgen.admin.batch_page)."""
        page = self.validate_page_number(request.query_params.get("page"), 1)
        context = await run_in_threadpool(self._page, checked_pk(request), page)
        return {"page": context, "summary": context["summary"] if context else None, "status_badge": status_badge,
                "list_link": list_link}

    def _page(self, batch_id: int, page: int) -> dict[str, Any] | None:
        with self.services.sessions() as session:
            context = batch_page(session, batch_id, page)
        if context is None:
            return None
        summary, paths = context["summary"], context["summary"]["paths"]
        hybrid = paths.get("hybrid", {}).get("attempts", 0)
        summary["fallback_rate"] = round(paths.get("ar_fallback", {}).get("attempts", 0) / hybrid, 4) if hybrid else None
        summary["first_pass_rate"] = round(paths.get("hybrid", {}).get("passed", 0) / hybrid, 4) if hybrid else None
        return context

    @expose("/jsonl/{pk}", methods=["GET"])  # not /export/: sqladmin's own export route has that path
    async def download_jsonl(self, request: Request) -> Response:
        """The batch's JSONL download, as the API exports it (a GET: it changes nothing)."""
        batch_id = checked_pk(request)
        with self.services.sessions() as session:
            if session.get(Batch, batch_id) is None:
                raise HTTPException(404, f"no batch with id {batch_id}")
        return export_download(self.services.sessions, batch_id, export_options(request))


class AttemptAdmin(ReadOnlyView, model=Attempt):
    name = "Attempt"
    name_plural = "Attempts"
    icon = "fa-solid fa-gears"
    column_list = [Attempt.id, Attempt.item_id, Attempt.run_no, Attempt.path, Attempt.passed,
                   Attempt.generated_tokens, Attempt.forward_passes, Attempt.tokens_per_forward, Attempt.duration_s]
    column_default_sort = [(Attempt.id, True)]


class ReviewAdmin(ReadOnlyView, model=Review):
    name = "Review"
    name_plural = "Reviews"
    icon = "fa-solid fa-clipboard-check"
    column_list = [Review.id, Review.item_id, Review.decision, Review.reviewer_name, Review.note, Review.created_at]
    column_default_sort = [(Review.id, True)]


class UserAdmin(ReadOnlyView, model=User):
    name = "User"
    name_plural = "Users"
    icon = "fa-solid fa-user"
    column_list = [User.id, User.username, User.is_admin, User.disabled, User.created_at]
    column_details_exclude_list = [User.password_hash]


class ApiTokenAdmin(ReadOnlyView, model=ApiToken):
    name = "API token"
    name_plural = "API tokens"
    icon = "fa-solid fa-key"
    column_list = [ApiToken.id, ApiToken.user, ApiToken.name, ApiToken.prefix, ApiToken.created_at,
                   ApiToken.last_used_at, ApiToken.revoked_at]
    column_details_exclude_list = [ApiToken.token_sha256]


MODEL_VIEWS = (ItemAdmin, BatchAdmin, AttemptAdmin, ReviewAdmin, UserAdmin, ApiTokenAdmin)

