"""Request and response shapes of /api, for the OpenAPI schema (handlers return plain dicts)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class ItemFields(BaseModel):
    """What every view of an item says about it."""

    item_id: int
    batch_id: int
    line: int
    key: str | None
    kind: str
    status: str
    decision: str
    """What the export calls it: approved, edited, rejected, unreviewed-pass, unreviewed-flagged, error, pending."""


class ItemDetail(ItemFields):
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


class ItemRow(ItemFields):
    review_status: str | None
    final_path: str | None
    failing: list[str]
    message: str
    """The first failing report ("validator: message") of the final attempt, or the error's first line."""
    title: str
    preview: str
    updated_at: str
    links: dict[str, str]


class ItemPage(BaseModel):
    items: list[ItemRow]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""
    limit: int


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "edit", "use_attempt", "use-attempt", "requeue"]
    note: str | None = Field(None, max_length=5_000)
    edited_output: str | None = Field(None, max_length=200_000, description="edit: the new output")
    attempt_id: int | None = Field(None, ge=1, le=2**31 - 1, description="use_attempt: whose output becomes final")

    @model_validator(mode="after")
    def _fields_fit_the_decision(self) -> "ReviewRequest":
        if self.decision == "edit" and self.edited_output is None:
            raise ValueError("edited_output: an edit needs the new output")
        if self.decision != "edit" and self.edited_output is not None:
            raise ValueError(f"edited_output: only an edit takes it, not {self.decision}")
        if self.decision in ("use_attempt", "use-attempt") and self.attempt_id is None:
            raise ValueError("attempt_id: use_attempt needs the attempt whose output becomes final")
        if self.decision not in ("use_attempt", "use-attempt") and self.attempt_id is not None:
            raise ValueError(f"attempt_id: only use_attempt takes it, not {self.decision}")
        return self


class ReviewResult(BaseModel):
    item_id: int
    review_id: int
    decision: str
    status: str
    review_status: str | None
    export_decision: str
    queued: bool | None
    """requeue: whether the broker took the item now (else the reaper queues it)."""
