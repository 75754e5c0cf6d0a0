"""Response shapes of /api, for the OpenAPI schema (handlers return plain dicts)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ExistingItem(BaseModel):
    line_no: int
    key: str
    item_id: int
    batch_id: int
    status: str


class SubmitResponse(BaseModel):
    batch_id: int
    new_items: int
    existing_items: list[ExistingItem]
    duplicate_batch: bool
    queued: bool
    """False when the broker was unreachable: the items are stored and the reaper queues them."""
    links: dict[str, str]


class Problem(BaseModel):
    line: int
    field: str
    message: str


class SubmitProblemResponse(BaseModel):
    detail: str
    problems: list[Problem]


class BatchRow(BaseModel):
    batch_id: int
    name: str
    mode: str
    items: int
    created_at: str


class BatchList(BaseModel):
    batches: list[BatchRow]


class BatchSummary(BaseModel):
    batch_id: int
    name: str
    mode: str
    created_at: str
    total: int
    finished: int
    progress: float
    counts: dict[str, int]
    kinds: dict[str, dict[str, int]]
    paths: dict[str, dict[str, Any]]
    pass_rate: float | None


class ItemDetail(BaseModel):
    item_id: int
    batch_id: int
    line: int
    key: str | None
    kind: str
    status: str
    input: dict[str, Any]
    output: str | None
    final_path: str | None
    error: str | None
    review_status: str | None
    edited: bool
    review: dict[str, Any] | None
    reports: list[Any]
    record: dict[str, Any] | None = None
    attempts: list[dict[str, Any]]


class RequeueResult(BaseModel):
    item_id: int
    status: str
    queued: bool
