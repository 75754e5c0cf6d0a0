"""/api routes. Handlers are thin: parsing and storage live in `pipeline`, queueing in `workers`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AfterValidator
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import desc, select
from starlette.concurrency import run_in_threadpool

from hybridgen.api.auth import ApiUser, require_token
from hybridgen.words import plural
from hybridgen.api.schemas import (
    BatchList,
    BatchSummary,
    ItemDetail,
    RequeueResult,
    SubmitProblemResponse,
    SubmitResponse,
)
from hybridgen.export_stream import export_download
from service.export import ExportOptions, item_record
from service.reviews import review_items
from service.spec import SpecError, parse_submission
from service.storage.models import Attempt, Batch, Item, ReviewDecision, User
from service.storage.queries import batch_summary
from service.storage.types import MAX_ID
from service.storage.models import ItemStatus
from service.submission import MODES, queued_item_ids, resubmission_conflict, submit_batch
from service.webhook import PARAM as WEBHOOK_PARAM, WebhookError, batch_url

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["batches"])


def storable_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: refuse it here (a 422 naming the parameter), not as a 500 at commit."""
    if "\x00" in value:
        raise ValueError("NUL characters (\\u0000) are not allowed in text")
    return value


# Ids are INTEGER columns: a value the database cannot hold is a 422 here, not an overflow (500) there.
BatchId = Annotated[int, Path(ge=1, le=MAX_ID, description="A batch id")]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="An item id")]


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The request body, refusing (413) more than `limit_bytes` without reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit_bytes:
        raise HTTPException(413, f"the body is {declared} bytes; at most {limit_bytes} accepted")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise HTTPException(413, f"the body is larger than {limit_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)


JSONL_TYPES = {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines"}


def body_format(content_type: str) -> str:
    """jsonl or json when the Content-Type says so; auto (sniffed) for text/plain, curl's default, etc."""
    media = content_type.split(";")[0].strip().lower()
    if media in JSONL_TYPES:
        return "jsonl"
    return "json" if media == "application/json" else "auto"


@router.post(
    "/batches",
    status_code=201,
    response_model=SubmitResponse,
    responses={200: {"model": SubmitResponse, "description": "These jobs were submitted before: the stored batch"},
               400: {"model": SubmitProblemResponse, "description": "Bad jobs, mode or webhook; nothing was stored"},
               409: {"description": "These jobs are stored as a batch of another mode or model (see new_batch)"},
               413: {"description": "Body too large"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/x-ndjson": {"schema": {"type": "string"}, "example": '{"kind": "article", "input": {"topic": "tea"}}'},
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    }}},
)
async def submit(
    request: Request,
    mode: str | None = Query(None, description="hybrid, ar or plain; default HYBRIDGEN_DEFAULT_MODE"),
    name: Annotated[str, Query(max_length=300, description="A label for the batch"),
                    AfterValidator(storable_text)] = "api",
    webhook: str | None = Query(None, max_length=2000, description=(
        "URL to POST a signed JSON summary to when the batch has finished (default HYBRIDGEN_WEBHOOK_URL); "
        "it must start with one of HYBRIDGEN_WEBHOOK_ALLOWED_PREFIXES")),
    new_batch: bool = Query(False, description="Store the jobs as a new batch even if they were submitted "
                                               "before (e.g. again in another mode or with another model)"),
    user: ApiUser = Depends(require_token),
) -> Any:
    """Store a batch (JSONL body, one job per line, or a JSON array of jobs) and queue it.

    All or nothing: a body with any bad job stores nothing and answers 400 listing every problem
    with its line (array element) number, field and what was expected. The same jobs sent again
    answer with the stored batch (200), unless it was made for another mode or HYBRIDGEN_MODEL:
    that is refused (409) unless `new_batch=true`.
    """
    services = request.app.state.services
    if mode is not None and mode not in MODES:
        raise HTTPException(400, f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    try:
        webhook_url = batch_url(webhook, services.settings.webhook)
    except WebhookError as e:
        raise HTTPException(400, f"webhook: {e}") from None
    body = await read_body(request, services.settings.max_request_mb * 1024 * 1024)
    try:
        parsed = parse_submission(body, source="body", fmt=body_format(request.headers.get("content-type", "")))
    except SpecError as e:
        return JSONResponse(status_code=400, content={
            "detail": f"{plural(len(e.problems), 'problem')} in the submitted jobs; nothing was stored",
            "problems": e.as_dicts()[:200],
        })
    # Storing and queueing block on the database and the broker: keep them off the event loop.
    mode = mode or services.settings.default_mode
    if not new_batch:
        conflict = await run_in_threadpool(resubmission_conflict, services.sessions, parsed, mode=mode,
                                           model=services.settings.model)
        if conflict:
            raise HTTPException(409, f"{conflict}. Nothing was stored. Send new_batch=true to store them as a "
                                     "new batch, or resubmit with the stored batch's mode.")
    result, queued = await run_in_threadpool(store_and_queue, services, parsed, name, mode, user,
                                             webhook_url, new_batch)
    content = {**result.as_dict(), "queued": queued,
               "links": {"batch": f"/api/batches/{result.batch_id}",
                         "export": f"/api/batches/{result.batch_id}/export"}}
    return JSONResponse(status_code=200 if result.duplicate_batch else 201, content=content)


def store_and_queue(services, parsed, name: str, mode: str, user: ApiUser, webhook_url: str | None = None,
                    new_batch: bool = False):
    """As `hybridgen submit`: store all or nothing, then queue what no task carries yet. A resubmission
    keeps the stored batch's webhook."""
    params = {"submitted_by": user.username, **({WEBHOOK_PARAM: webhook_url} if webhook_url else {})}
    result = submit_batch(services.sessions, parsed, name=name, mode=mode, params=params,
                          model=services.settings.model, new_batch=new_batch)
    to_queue = result.new_item_ids or queued_item_ids(services.sessions, result.batch_id, only_unenqueued=True)
    return result, services.try_enqueue(to_queue)


@router.get("/batches", response_model=BatchList)
def list_batches(request: Request, limit: int = Query(50, ge=1, le=500),
                 before_id: int | None = Query(None, ge=1, le=MAX_ID)):
    """Recent batches, newest first (page with `before_id`)."""
    with request.app.state.services.sessions() as session:
        q = select(Batch).order_by(desc(Batch.id)).limit(limit)
        if before_id is not None:
            q = q.where(Batch.id < before_id)
        rows = session.execute(q).scalars().all()
        return {"batches": [{"batch_id": b.id, "name": b.name, "mode": b.mode, "items": b.item_count,
                             "created_at": b.created_at.isoformat()} for b in rows]}


@router.get("/batches/{batch_id}", response_model=BatchSummary)
def get_batch(request: Request, batch_id: BatchId):
    """Counts by status, progress, pass rate and per-path decode counters."""
    with request.app.state.services.sessions() as session:
        summary = batch_summary(session, batch_id)
    if summary is None:
        raise HTTPException(404, f"no batch with id {batch_id}")
    return summary


STATUSES = ", ".join(s.value for s in ItemStatus)


def export_options(status: str | None, reviewed_only: bool, include_rejected: bool,
                   include_flagged: bool) -> ExportOptions:
    """The export's query parameters as options; a status that is none is a 422 naming `status`."""
    try:
        statuses = frozenset(s.strip() for s in (status or "").split(",") if s.strip())
        return ExportOptions(statuses, reviewed_only, include_rejected, include_flagged)
    except ValueError as e:
        raise HTTPException(422, f"{e} (comma-separated)") from None


@router.get("/batches/{batch_id}/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": (
                "One JSON object per item. Headers X-Hybridgen-Exported, X-Hybridgen-Left-Out, "
                "X-Hybridgen-Left-Out-By (e.g. `rejected=1,unreviewed-flagged=2`) and X-Hybridgen-Pending "
                "count what was exported and left out")}})
def export_batch(request: Request, batch_id: BatchId,
                 status: str | None = Query(None, max_length=200, description=f"Only these item statuses, "
                                            f"comma-separated ({STATUSES}); naming flagged includes unreviewed "
                                            "flagged items"),
                 reviewed_only: bool = Query(False, description="Only items a reviewer approved or edited "
                                                                "(and rejected with include_rejected)"),
                 include_flagged: bool = Query(False, description="Also export flagged items nobody reviewed"),
                 include_rejected: bool = Query(False, description="Also export items a reviewer rejected")):
    """The batch's items as JSONL (streamed): input, output (a reviewer's edit if any), its one final
    `decision` (approved, edited, rejected, unreviewed-pass, unreviewed-flagged, error, pending), review.

    By default unreviewed flagged and rejected items are left out; the headers say how many."""
    options = export_options(status, reviewed_only, include_rejected, include_flagged)
    sessions = request.app.state.services.sessions
    with sessions() as session:
        if session.get(Batch, batch_id) is None:
            raise HTTPException(404, f"no batch with id {batch_id}")
    return export_download(sessions, batch_id, options)


@router.get("/items/{item_id}", response_model=ItemDetail)
def get_item(request: Request, item_id: ItemId):
    """One item: its record as exported, plus every attempt (path, pass, tokens, timings, reports)."""
    with request.app.state.services.sessions() as session:
        item = session.get(Item, item_id)
        if item is None:
            raise HTTPException(404, f"no item with id {item_id}")
        final = session.get(Attempt, item.final_attempt_id) if item.final_attempt_id else None
        record = item_record(item, final)
        record["attempts"] = [
            {"id": a.id, "run": a.run_no, "path": a.path, "passed": a.passed, "output": a.output, "plan": a.plan,
             "reports": a.reports, "models": a.models, "timings": a.timings,
             "generated_tokens": a.generated_tokens, "forward_passes": a.forward_passes,
             "tokens_per_forward": a.tokens_per_forward, "duration_s": a.duration_s}
            for a in session.execute(select(Attempt).where(Attempt.item_id == item_id).order_by(Attempt.id)).scalars()
        ]
        return record


@router.post("/items/{item_id}/requeue", status_code=202, response_model=RequeueResult,
             responses={404: {"description": "No such item"}, 409: {"description": "The item has not finished"}})
def requeue_item(request: Request, item_id: ItemId, user: ApiUser = Depends(require_token)):
    """Generate a finished item again (stored as a `requeue` review by the token's user)."""
    services = request.app.state.services
    with services.sessions.begin() as session:
        if session.get(Item, item_id) is None:
            raise HTTPException(404, f"no item with id {item_id}")
        outcome = review_items(session, [item_id], ReviewDecision.requeue, session.get(User, user.id))
    if item_id in outcome.skipped:
        raise HTTPException(409, f"item {item_id}: {outcome.skipped[item_id]}")
    return {"item_id": item_id, "status": "queued", "queued": services.try_enqueue([item_id])}


# The review list and decisions live in their own module; this router's token dependency covers them.
from hybridgen.api.review_routes import router as review_router  # noqa: E402 - after this router exists

router.include_router(review_router)
