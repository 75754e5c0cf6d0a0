"""SQLAlchemy 2.0 models: batches, items, attempts, reviews, feedback labels, webhook deliveries, users, API tokens.

The schema is created and changed only by Alembic revisions in `migrations/` (which never import
this module); `tests/test_migrations.py` checks that the two agree.

Item status machine:

    queued ──claim──► running ──► done | flagged | error
       ▲                 │
       └──── requeue ◄───┘   (reaper: heartbeat went stale; admin: requeue)
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from service.storage.types import JSONType, UTCDateTime, utcnow


class ItemStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    done = "done"
    flagged = "flagged"
    error = "error"

    @classmethod
    def final(cls) -> set["ItemStatus"]:
        return {cls.done, cls.flagged, cls.error}


class AttemptPath(str, enum.Enum):
    ar = "ar"  # full AR generation (mode=ar)
    hybrid = "hybrid"  # AR plan + diffusion refine
    ar_fallback = "ar_fallback"  # full AR after a failed hybrid attempt
    plain = "plain"  # one plain prompt per item, no plan (mode=plain, the baseline)


class ReviewDecision(str, enum.Enum):
    approve = "approve"
    reject = "reject"
    edit = "edit"
    requeue = "requeue"
    use_attempt = "use_attempt"  # make another attempt's output the final one (Review.attempt_id)
    undo = "undo"  # restore the item as it was before the reviewer's previous decision


class FeedbackLabel(str, enum.Enum):
    false_flag = "false_flag"  # a failing report a reviewer says is wrong
    missed_defect = "missed_defect"  # a defect (a rubric class) no validator caught


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: UTCDateTime}


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    name: Mapped[str] = mapped_column(String(300), default="")
    """Where the batch came from: a file name, or `api` for HTTP submissions."""
    content_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    """Hash of the submitted jobs; the same content submitted again returns this batch."""
    mode: Mapped[str] = mapped_column(String(16), default="ar")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    item_count: Mapped[int] = mapped_column(Integer, default=0)

    items: Mapped[list["Item"]] = relationship(back_populates="batch", order_by="Item.line_no")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_batch_status", "batch_id", "status"),
        # Full-text search of the review list; PostgreSQL only (SQLite searches with LIKE).
        Index("ix_items_search_text_fts",
              func.to_tsvector(literal_column("'simple'"), func.coalesce(literal_column("search_text"), "")),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    """1-based line (or array index + 1) of the job in its submission."""
    kind: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any]] = mapped_column()
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.queued.value, index=True)
    output: Mapped[str | None] = mapped_column(Text)
    """The deliverable as text: Markdown (article), JSON (product), Python source (code)."""
    final_path: Mapped[str | None] = mapped_column(String(16))
    final_attempt_id: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    review_status: Mapped[str | None] = mapped_column(String(16))
    """approved | rejected | edited | requeued: the latest review decision on the current output."""
    edited_output: Mapped[str | None] = mapped_column(Text)
    """A reviewer's corrected output; exported instead of `output` while set."""
    search_text: Mapped[str | None] = mapped_column(Text)
    """Input and deliverable as one text for the review list's search (service.storage.search)."""
    failed_validators: Mapped[str | None] = mapped_column(String(500))
    """",name,name," of the validators the final attempt failed (for filtering the review list)."""
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a worker has claimed this item; attempts are keyed by it."""
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    enqueued_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    batch: Mapped[Batch] = relationship(back_populates="items")
    attempts: Mapped[list["Attempt"]] = relationship(back_populates="item", order_by="Attempt.id")
    reviews: Mapped[list["Review"]] = relationship(back_populates="item", order_by="Review.id")


class Attempt(Base):
    """One generation path tried for one item in one run (claim) of it."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("item_id", "run_no", "path", name="uq_attempts_item_run_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    run_no: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(16))
    models: Mapped[dict[str, Any]] = mapped_column(default=dict)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    output: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    reports: Mapped[list[Any]] = mapped_column(default=list)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Seconds per stage, e.g. {"plan": 1.2, "refine": 3.4, "validate": 0.1}."""
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    generated_tokens: Mapped[int] = mapped_column(Integer, default=0)
    forward_passes: Mapped[int] = mapped_column(Integer, default=0)
    tokens_per_forward: Mapped[float] = mapped_column(Float, default=0.0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="attempts")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Stamped into each review-app session at login; raising it ends every session of the user (logout,
    password change, disabling), since a signed cookie cannot be taken back from the browser."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    """One admin action on an item; the item's `review_status` mirrors the latest decision."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewer_name: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    edited_output: Mapped[str | None] = mapped_column(Text)
    attempt_id: Mapped[int | None] = mapped_column(Integer)
    """For use_attempt: the attempt whose output became final."""
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """The item's review fields before this decision, which `undo` restores."""
    undoes_id: Mapped[int | None] = mapped_column(Integer)
    """For undo: the review it took back."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="reviews")


class Feedback(Base):
    """A reviewer's label on the quality gate, an extra labelled set for benchmarks/validators.py."""

    __tablename__ = "feedback_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    attempt_id: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(32))
    """A FeedbackLabel value."""
    validator: Mapped[str | None] = mapped_column(String(100))
    """false_flag: the report's validator name, e.g. `degeneration[description]`."""
    defect_class: Mapped[str | None] = mapped_column(String(64))
    """missed_defect: the class from docs/review-rubric.md."""
    note: Mapped[str | None] = mapped_column(Text)
    labeller_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    labeller_name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """The announcement of one finished batch to its webhook URL, retried with backoff."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("batch_id", name="uq_webhook_deliveries_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    """pending | delivered | failed (gave up after the last retry)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_try_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()


class ApiToken(Base):
    """A bearer token for the HTTP API. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    """The token's first characters, kept so a user can tell tokens apart in `tokens list`."""
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()
