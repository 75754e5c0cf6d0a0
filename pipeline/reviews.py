"""Reviewer decisions on items: approve, reject, edit, requeue. Each one is stored as a Review row.

Used by the review app, the HTTP API and `hybridgen requeue` alike. Requeueing here only resets the
item in the database; the caller puts it on the queue (workers.enqueue), and if that fails the reaper does.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.storage.models import Item, ItemStatus, Review, ReviewDecision, User
from pipeline.storage.queries import requeue_items
from pipeline.storage.types import utcnow

# The item's review_status after each decision.
STATUS_AFTER = {
    ReviewDecision.approve: "approved",
    ReviewDecision.reject: "rejected",
    ReviewDecision.edit: "edited",
    ReviewDecision.requeue: "requeued",
}
MAX_NOTE_CHARS = 5_000
MAX_EDIT_CHARS = 200_000


class ReviewError(ValueError):
    """A review request that cannot be applied; the message names the item and the reason."""


@dataclass(frozen=True)
class Operator:
    """A reviewer at the command line, who need not have a review-app account: the review row keeps
    the name (and links the account when one of that name exists, see `reviewer_named`)."""

    username: str
    id: int | None = None


def reviewer_named(session: Session, name: str) -> User | Operator:
    """The user called `name`, or an Operator of that name."""
    user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
    return user if user is not None else Operator(name)


@dataclass
class ReviewOutcome:
    decision: ReviewDecision
    applied: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    """Item id -> why the decision did not apply to it (e.g. still running)."""

    @property
    def requeued(self) -> list[int]:
        return self.applied if self.decision is ReviewDecision.requeue else []


def review_items(
    session: Session,
    item_ids: Sequence[int],
    decision: ReviewDecision | str,
    reviewer: User | Operator,
    *,
    note: str | None = None,
    edited_output: str | None = None,
) -> ReviewOutcome:
    """Apply one decision to items; items it cannot apply to are listed in `skipped`, not failed."""
    decision = ReviewDecision(decision)
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"note: expected at most {MAX_NOTE_CHARS} characters, got {len(note)}")
    for name, text in (("note", note), ("edited_output", edited_output)):
        if text is not None and "\x00" in text:  # PostgreSQL text cannot hold NUL
            raise ReviewError(f"{name}: NUL characters (\\u0000) are not allowed in text")
    if decision is ReviewDecision.edit and len(item_ids) != 1:
        raise ReviewError("edit applies to exactly one item")
    outcome = ReviewOutcome(decision)
    items = {i.id: i for i in session.execute(select(Item).where(Item.id.in_(list(item_ids)))).scalars()}
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None:
            outcome.skipped[item_id] = "no such item"
            continue
        if item.status not in {s.value for s in ItemStatus.final()}:
            outcome.skipped[item_id] = f"item is {item.status}; review it once it has finished"
            continue
        if decision is ReviewDecision.edit:
            item.edited_output = checked_edit(item, edited_output)
        if decision is ReviewDecision.requeue:
            requeue_items(session, [item.id], only_final=True)
            item.edited_output = None
        item.review_status = STATUS_AFTER[decision]
        session.add(Review(
            item_id=item.id, reviewer_id=reviewer.id, reviewer_name=reviewer.username,
            decision=decision.value, note=note or None,
            edited_output=item.edited_output if decision is ReviewDecision.edit else None,
            created_at=utcnow(),
        ))
        outcome.applied.append(item.id)
    session.flush()
    return outcome


def checked_edit(item: Item, text: str | None) -> str:
    """The reviewer's text, if it is still a valid deliverable of the item's kind."""
    if text is None or not text.strip():
        raise ReviewError(f"item {item.id}: the edited output is empty")
    if len(text) > MAX_EDIT_CHARS:
        raise ReviewError(f"item {item.id}: the edited output has {len(text)} characters; at most {MAX_EDIT_CHARS}")
    if item.kind == "product":
        try:
            if not isinstance(json.loads(text), dict):
                raise ReviewError(f"item {item.id}: a product record must be a JSON object")
        except json.JSONDecodeError as e:
            raise ReviewError(f"item {item.id}: the edited record is not JSON: {e.msg} at line {e.lineno} "
                              f"column {e.colno}") from None
    if item.kind == "code":
        try:
            ast.parse(text)
        except SyntaxError as e:
            raise ReviewError(f"item {item.id}: the edited code does not parse: {e.msg} at line {e.lineno}") from None
    return text
