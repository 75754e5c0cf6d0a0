"""Reviewer decisions on items: approve, reject, edit, requeue, use another attempt's output, undo.
Each one is stored as a Review row holding the item's review fields as they were before it
(`Review.previous`), so `undo_last` can put them back exactly.

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

from service.storage.models import Attempt, Item, ItemStatus, Review, ReviewDecision, User
from service.storage.search import search_text
from service.storage.queries import requeue_items
from service.storage.types import utcnow

# The item's review_status after each decision.
STATUS_AFTER = {
    ReviewDecision.approve: "approved",
    ReviewDecision.reject: "rejected",
    ReviewDecision.edit: "edited",
    ReviewDecision.requeue: "requeued",
    ReviewDecision.use_attempt: "edited",  # the deliverable is not what the gate chose: a reviewer's output
}
# What a decision can change, and so what `undo` restores.
SNAPSHOT_FIELDS = ("status", "review_status", "edited_output", "output", "final_path", "final_attempt_id",
                   "failed_validators", "run_count")
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
    attempt_id: int | None = None,
) -> ReviewOutcome:
    """Apply one decision to items; items it cannot apply to are listed in `skipped`, not failed.

    `use_attempt` needs `attempt_id`, one of the item's own attempts; `undo` goes through `undo_last`.
    """
    decision = ReviewDecision(decision)
    if decision is ReviewDecision.undo:
        raise ReviewError("undo is not a decision on items; it takes back the reviewer's last one (undo_last)")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"note: expected at most {MAX_NOTE_CHARS} characters, got {len(note)}")
    for name, text in (("note", note), ("edited_output", edited_output)):
        if text is not None and "\x00" in text:  # PostgreSQL text cannot hold NUL
            raise ReviewError(f"{name}: NUL characters (\\u0000) are not allowed in text")
    if decision in (ReviewDecision.edit, ReviewDecision.use_attempt) and len(item_ids) != 1:
        raise ReviewError(f"{decision.value} applies to exactly one item")
    if decision is ReviewDecision.use_attempt and attempt_id is None:
        raise ReviewError("use_attempt needs the attempt whose output becomes final")
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
        previous = snapshot(item)
        chosen = None
        if decision is ReviewDecision.use_attempt:
            chosen = session.get(Attempt, attempt_id)
            if chosen is None or chosen.item_id != item.id:
                raise ReviewError(f"item {item.id}: attempt {attempt_id} is not one of its attempts")
            if chosen.output is None:
                raise ReviewError(f"item {item.id}: attempt {attempt_id} has no output to use")
            item.edited_output = chosen.output
        if decision is ReviewDecision.edit:
            item.edited_output = checked_edit(item, edited_output)
        if decision is ReviewDecision.requeue:
            requeue_items(session, [item.id], only_final=True)
            item.edited_output = None
        item.review_status = STATUS_AFTER[decision]
        item.search_text = search_text(item.input, item.output, item.edited_output)
        session.add(Review(
            item_id=item.id, reviewer_id=reviewer.id, reviewer_name=reviewer.username,
            decision=decision.value, note=note or None,
            edited_output=item.edited_output if decision in (ReviewDecision.edit, ReviewDecision.use_attempt) else None,
            attempt_id=chosen.id if chosen is not None else None,
            previous=previous, created_at=utcnow(),
        ))
        outcome.applied.append(item.id)
    session.flush()
    return outcome


def snapshot(item: Item) -> dict:
    return {name: getattr(item, name) for name in SNAPSHOT_FIELDS}


def undo_last(session: Session, reviewer: User | Operator) -> Review:
    """Take back `reviewer`'s latest decision that is not undone yet: the item gets its fields back.

    Refused (ReviewError) when the item has changed since in a way the snapshot cannot cover: it
    was requeued and a worker has run it again, or someone else decided on it after this reviewer.
    Returns the `undo` review row, whose `undoes_id` names the decision taken back.
    """
    undone = select(Review.undoes_id).where(Review.undoes_id.is_not(None))
    last = session.execute(
        select(Review).where(Review.reviewer_name == reviewer.username, Review.previous.is_not(None),
                             Review.decision != ReviewDecision.undo.value, Review.id.not_in(undone))
        .order_by(Review.id.desc()).limit(1)
    ).scalar_one_or_none()
    if last is None:
        raise ReviewError("nothing to undo: you have no decision left to take back")
    item = session.get(Item, last.item_id, with_for_update=True)
    later = session.execute(select(Review.id).where(Review.item_id == item.id, Review.id > last.id,
                                                     Review.undoes_id.is_(None)).limit(1)).first()
    if later is not None:
        raise ReviewError(f"item {item.id}: decided again after your {last.decision} (review #{later[0]}); "
                          "nothing undone")
    if item.run_count != last.previous.get("run_count", item.run_count) or item.status == ItemStatus.running.value:
        raise ReviewError(f"item {item.id}: it has been run again since it was requeued; nothing undone")
    before = snapshot(item)
    for name in SNAPSHOT_FIELDS:
        setattr(item, name, last.previous.get(name, getattr(item, name)))
    item.search_text = search_text(item.input, item.output, item.edited_output)
    review = Review(item_id=item.id, reviewer_id=reviewer.id, reviewer_name=reviewer.username,
                    decision=ReviewDecision.undo.value, note=f"undo of review #{last.id} ({last.decision})",
                    undoes_id=last.id, previous=before, created_at=utcnow())
    session.add(review)
    session.flush()
    return review


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
