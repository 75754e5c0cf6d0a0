"""/api/items (the review list, filtered, cursor-paged) and /api/items/{id}/review (a decision).

Filters mean what they mean in the review app (`service.review_list.ItemFilter`, strict: a value
it cannot mean is a 422 naming the parameter). Decisions go through `service.reviews.review_items`,
stored as the review app stores them, by the token's user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import defer
from starlette.concurrency import run_in_threadpool

from hybridgen.api.auth import ApiUser, require_token
from hybridgen.api.schemas import ItemPage, ReviewRequest, ReviewResult
from service.export import decision_of
from service.review_list import FilterError, ItemFilter, ListRow, dialect_of, list_rows
from service.reviews import ReviewError, review_items
from service.storage.models import Item, ReviewDecision, User
from service.storage.types import MAX_ID

router = APIRouter(tags=["review"])

MAX_REVIEW_BODY = 1024 * 1024  # an edit is at most 200,000 characters (service.reviews.MAX_EDIT_CHARS)


def _fingerprint(flt: ItemFilter) -> str:
    return hashlib.sha256(json.dumps(flt.params(), sort_keys=True).encode()).hexdigest()[:12]


def make_cursor(after_id: int, flt: ItemFilter) -> str:
    """Opaque to clients: the last id of a page, tied to the filter it was made for."""
    return base64.urlsafe_b64encode(f"v1:{after_id}:{_fingerprint(flt)}".encode()).decode().rstrip("=")


def read_cursor(cursor: str, flt: ItemFilter) -> int:
    try:
        version, after, fingerprint = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        after_id = int(after)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HTTPException(422, "cursor: not a cursor this API gave out; pass next_cursor from the previous "
                                 "page unchanged") from None
    if version != "v1" or not 0 <= after_id <= MAX_ID:
        raise HTTPException(422, "cursor: not a cursor this API gave out")
    if fingerprint != _fingerprint(flt):
        raise HTTPException(422, "cursor: it was made for other filters; a cursor continues the listing it came "
                                 "from (start again without one)")
    return after_id


@router.get("/items", response_model=ItemPage,
            responses={422: {"description": "A filter, limit or cursor it cannot mean; the message names it"}})
def list_items(
    request: Request,
    batch: str | None = Query(None, description="A batch id"),
    status: str | None = Query(None, description="queued, running, done, flagged or error"),
    kind: str | None = Query(None, description="article, product or code"),
    path: str | None = Query(None, description="The final attempt's path: hybrid, ar_fallback, ar or plain"),
    failing: str | None = Query(None, description="A validator the final attempt failed; `degeneration` also "
                                                  "matches `degeneration[description]`"),
    review: str | None = Query(None, description="approved, rejected, edited, requeued, or none (not reviewed)"),
    q: str | None = Query(None, description="Words that must all occur in the input or output (full-text "
                                            "search on PostgreSQL), or a client key"),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
):
    """Items in id order, filtered as the review list filters them, a page at a time."""
    params = {"batch": batch, "status": status, "kind": kind, "path": path, "failing": failing,
              "review": review, "search": q}
    try:
        flt = ItemFilter.from_params(params, strict=True)
    except FilterError as e:
        raise HTTPException(422, str(e).replace("search:", "q:", 1)) from None
    after_id = read_cursor(cursor, flt) if cursor else 0
    with request.app.state.services.sessions() as session:
        items = list(session.execute(
            select(Item).options(defer(Item.search_text))
            .where(*flt.conditions(dialect_of(session)), Item.id > after_id)
            .order_by(Item.id).limit(limit + 1)
        ).scalars())
        more, items = len(items) > limit, items[:limit]
        rows = [_row(row) for row in list_rows(session, items, flt)]
    return {"items": rows, "limit": limit, "next_cursor": make_cursor(items[-1].id, flt) if more else None}


def _row(row: ListRow) -> dict[str, Any]:
    item = row.item
    return {
        "item_id": item.id, "batch_id": item.batch_id, "line": item.line_no, "key": item.client_key,
        "kind": item.kind, "status": item.status, "decision": decision_of(item.status, item.review_status),
        "review_status": item.review_status, "final_path": item.final_path,
        "failing": [v for v in (item.failed_validators or "").split(",") if v],
        "message": row.message, "title": row.title, "preview": row.preview, "updated_at": item.updated_at.isoformat(),
        "links": {"item": f"/api/items/{item.id}", "review": f"/api/items/{item.id}/review"},
    }


@router.post(
    "/items/{item_id}/review", response_model=ReviewResult,
    responses={404: {"description": "No such item"}, 409: {"description": "The item has not finished"},
               413: {"description": "Body too large"},
               422: {"description": "A body the decision cannot take (e.g. an edit that is no valid output)"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ReviewRequest.model_json_schema()}}}},
)
async def review_item(request: Request, item_id: int = Path(ge=1, le=MAX_ID),
                      user: ApiUser = Depends(require_token)):
    """Decide on a finished item: approve, reject, edit (`edited_output`), use_attempt (`attempt_id`: that
    attempt's output becomes final) or requeue (generate it again; it is queued at once). Stored as a
    review by the token's user, as the review app stores it."""
    from hybridgen.api.routes import read_body

    body = await read_body(request, MAX_REVIEW_BODY)
    try:
        decision = ReviewRequest.model_validate_json(body or b"{}")
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)])
    services = request.app.state.services
    result = await run_in_threadpool(_apply, services, item_id, decision, user)
    if result.get("requeue"):
        result["queued"] = await run_in_threadpool(services.try_enqueue, [item_id])
    result.pop("requeue", None)
    return result


def _apply(services, item_id: int, request: ReviewRequest, user: ApiUser) -> dict[str, Any]:
    decision = ReviewDecision(request.decision.replace("-", "_"))
    with services.sessions.begin() as session:
        if session.get(Item, item_id) is None:
            raise HTTPException(404, f"no item with id {item_id}")
        try:
            outcome = review_items(session, [item_id], decision, session.get(User, user.id), note=request.note,
                                   edited_output=request.edited_output, attempt_id=request.attempt_id)
        except ReviewError as e:
            raise HTTPException(422, str(e)) from None
        if item_id in outcome.skipped:
            raise HTTPException(409, f"item {item_id}: {outcome.skipped[item_id]}")
        item = session.get(Item, item_id)
        session.refresh(item, ["reviews"])
        review = item.reviews[-1]
        return {"item_id": item_id, "review_id": review.id, "decision": decision.value, "status": item.status,
                "review_status": item.review_status, "export_decision": decision_of(item.status, item.review_status),
                "queued": None, "requeue": decision is ReviewDecision.requeue}
