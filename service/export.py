"""Export a batch as JSONL records (streamed; never loads a whole batch in memory).

Each record carries one final `decision`, what a client acts on:

    approved | edited        a reviewer accepted the output (edited: the reviewer's own text)
    rejected                 a reviewer refused it (left out unless asked for)
    unreviewed-pass          every validator passed, nobody reviewed it
    unreviewed-flagged       a validator failed, nobody reviewed it (left out unless asked for)
    error                    generation failed: no output
    pending                  queued or running, e.g. requeued by a reviewer: exported without output,
                             since the output it had is the one being replaced

What the validators said is `gate` (passed | flagged | error, None while pending); the item's raw
status and review_status stay off the row, so an approved flagged item never reads as both.

A batch whose submission named client keys stored before holds only the new jobs; its export
also carries the earlier items (after its own, with `stored_earlier: true` and the line of this
submission), so a client gets one record per job it sent.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from service.storage.models import Attempt, Batch, Item, ItemStatus

EXPORT_PAGE = 500

DECISIONS = ("approved", "edited", "rejected", "unreviewed-pass", "unreviewed-flagged", "error", "pending")
REVIEWED = {"approved", "edited", "rejected"}
GATE = {ItemStatus.done.value: "passed", ItemStatus.flagged.value: "flagged", ItemStatus.error.value: "error"}
FINAL = {s.value for s in ItemStatus.final()}


def decision_of(status: str, review_status: str | None) -> str:
    """The one final decision of an item, from its status and its latest review."""
    if status not in FINAL:
        return "pending"
    if review_status in REVIEWED:
        return review_status
    # None, or "requeued" on an item that has run again (finish_item clears it; kept for safety)
    if status == ItemStatus.error.value:
        return "error"
    return "unreviewed-pass" if status == ItemStatus.done.value else "unreviewed-flagged"


@dataclass(frozen=True)
class ExportOptions:
    statuses: frozenset[str] = frozenset()
    """Only items with these statuses (queued, running, done, flagged, error); empty: any."""
    reviewed_only: bool = False
    """Only items a reviewer decided on (approved, edited; rejected too with include_rejected)."""
    include_rejected: bool = False
    include_flagged: bool = False
    """Also unreviewed flagged items (also implied by naming `flagged` in `statuses`)."""

    def __post_init__(self):
        unknown = sorted(set(self.statuses) - {s.value for s in ItemStatus})
        if unknown:
            raise ValueError(f"status: {unknown[0]!r} is no item status; expected any of "
                             f"{', '.join(s.value for s in ItemStatus)}")

    def left_out_because(self, status: str, decision: str) -> str | None:
        """Why an item is not exported (a reason key of ExportSummary.left_out), or None if it is."""
        if self.statuses and status not in self.statuses:
            return "status"
        if decision == "rejected" and not self.include_rejected:
            return "rejected"
        if self.reviewed_only and decision not in REVIEWED:
            return "not-reviewed"
        if decision == "unreviewed-flagged" and not (self.include_flagged or ItemStatus.flagged.value in self.statuses):
            return "unreviewed-flagged"
        return None


@dataclass
class ExportSummary:
    exported: int = 0
    pending: int = 0
    """Exported rows without output: items still queued or running (requeued ones among them)."""
    left_out: dict[str, int] = field(default_factory=dict)
    """reason -> items: status (not in --status), rejected, not-reviewed (--reviewed-only),
    unreviewed-flagged (the default leaves them out)."""
    decisions: dict[str, int] = field(default_factory=dict)
    """decision -> exported rows."""

    def count(self, decision: str, reason: str | None, n: int = 1) -> None:
        if reason is not None:
            self.left_out[reason] = self.left_out.get(reason, 0) + n
            return
        self.exported += n
        self.decisions[decision] = self.decisions.get(decision, 0) + n
        if decision == "pending":
            self.pending += n

    @property
    def left_out_total(self) -> int:
        return sum(self.left_out.values())

    def as_dict(self) -> dict[str, Any]:
        return {"exported": self.exported, "pending": self.pending, "left_out": dict(self.left_out),
                "decisions": dict(self.decisions)}


# reason -> (how the left-out items are called, the option that exports them)
LEFT_OUT_WORDS = {
    "unreviewed-flagged": ("unreviewed flagged {items}", "--include-flagged"),
    "rejected": ("rejected {items}", "--include-rejected"),
    "not-reviewed": ("{items} nobody reviewed", "--reviewed-only"),
    "status": ("{items} of other statuses", "--status"),
}


def describe_left_out(summary: ExportSummary) -> str:
    """'left out 2 unreviewed flagged items (--include-flagged), 1 rejected item (--include-rejected)' or ''."""
    parts = []
    for reason, n in sorted(summary.left_out.items()):
        words, option = LEFT_OUT_WORDS.get(reason, (reason + " {items}", ""))
        parts.append(f"{n} " + words.format(items="item" if n == 1 else "items") + (f" ({option})" if option else ""))
    return "left out " + ", ".join(parts) if parts else ""


def export_records(session: Session, batch_id: int, options: ExportOptions | None = None, *,
                   include_rejected: bool | None = None,
                   summary: ExportSummary | None = None) -> Iterator[dict[str, Any]]:
    """The batch's export rows in order; `summary`, if given, counts what was exported and left out."""
    options = options or ExportOptions()
    if include_rejected is not None:  # the older keyword
        options = ExportOptions(options.statuses, options.reviewed_only, include_rejected, options.include_flagged)
    summary = summary if summary is not None else ExportSummary()
    batch = session.get(Batch, batch_id)
    params = (batch.params if batch is not None else None) or {}
    held = params.get("keys_held_elsewhere", {})  # a `new_batch` copy: keys its items could not take
    last_id = 0
    while True:
        items = _page(session, Item.batch_id == batch_id, Item.id > last_id)
        if not items:
            break
        last_id = items[-1].id
        for item, record in _records(session, items, options, summary):
            record["key"] = record["key"] or held.get(str(item.line_no))
            yield {**record, "stored_earlier": False}
    earlier = params.get("stored_earlier", [])
    for start in range(0, len(earlier), EXPORT_PAGE):
        page = earlier[start:start + EXPORT_PAGE]
        items = _page(session, Item.id.in_([e["item_id"] for e in page]))
        line_of = {e["item_id"]: e["line"] for e in page}
        for item, record in sorted(_records(session, items, options, summary), key=lambda p: line_of[p[0].id]):
            yield {**record, "line": line_of[item.id], "stored_earlier": True}


def export_summary(session: Session, batch_id: int, options: ExportOptions | None = None) -> ExportSummary:
    """What `export_records` would export and leave out, counted in SQL (for the API's headers, which
    go out before the rows)."""
    options = options or ExportOptions()
    summary = ExportSummary()
    groups = status_review_groups(session, batch_id)
    batch = session.get(Batch, batch_id)
    earlier = [e["item_id"] for e in ((batch.params if batch else None) or {}).get("stored_earlier", [])]
    for start in range(0, len(earlier), EXPORT_PAGE):
        for status, review_status in session.execute(
            select(Item.status, Item.review_status).where(Item.id.in_(earlier[start:start + EXPORT_PAGE]))
        ).all():
            groups[(status, review_status)] += 1
    for (status, review_status), n in groups.items():
        decision = decision_of(status, review_status)
        summary.count(decision, options.left_out_because(status, decision), n)
    return summary


def decision_counts(session: Session, batch_id: int) -> dict[str, int]:
    """The batch's own items by decision (every decision present, 0 when none)."""
    out = {d: 0 for d in DECISIONS}
    for (status, review_status), n in status_review_groups(session, batch_id).items():
        out[decision_of(status, review_status)] += n
    return out


def status_review_groups(session: Session, batch_id: int) -> Counter[tuple[str, str | None]]:
    """The batch's own items counted by (status, review status): every decision follows from these."""
    return Counter({(status, review_status): n for status, review_status, n in session.execute(
        select(Item.status, Item.review_status, func.count()).where(Item.batch_id == batch_id)
        .group_by(Item.status, Item.review_status)
    ).all()})


def _page(session: Session, *conditions: Any) -> list[Item]:
    q = select(Item).where(*conditions).options(selectinload(Item.reviews)).order_by(Item.id).limit(EXPORT_PAGE)
    return list(session.execute(q).scalars().all())


def _records(session: Session, items: list[Item], options: ExportOptions,
             summary: ExportSummary) -> list[tuple[Item, dict[str, Any]]]:
    """(item, record) for the items the options select; the others are counted as left out."""
    chosen = []
    for item in items:
        decision = decision_of(item.status, item.review_status)
        reason = options.left_out_because(item.status, decision)
        summary.count(decision, reason)
        if reason is None:
            chosen.append(item)
    final_ids = [i.final_attempt_id for i in chosen if i.final_attempt_id]
    finals = {
        a.id: a for a in session.execute(select(Attempt).where(Attempt.id.in_(final_ids))).scalars()
    } if final_ids else {}
    return [(item, export_row(item, finals.get(item.final_attempt_id))) for item in chosen]


def export_row(item: Item, final_attempt: Attempt | None) -> dict[str, Any]:
    """One JSONL row: the deliverable and its one `decision` (see the module docstring)."""
    record = item_record(item, final_attempt)
    status = record.pop("status")
    record.pop("review_status")
    decision = record.pop("decision")
    if decision == "pending":
        # Requeued (or not run yet): what it holds is the output being replaced, or nothing.
        record.update(output=None, final_path=None, edited=False, reports=[])
        record.pop("record", None)
    return {"item_id": record.pop("item_id"), "batch_id": record.pop("batch_id"), "line": record.pop("line"),
            "key": record.pop("key"), "kind": record.pop("kind"), "decision": decision, "gate": GATE.get(status),
            **record}


def item_record(item: Item, final_attempt: Attempt | None) -> dict[str, Any]:
    """The item as the API shows it: its state (status, review_status), the export's `decision`, output."""
    latest = item.reviews[-1] if item.reviews else None
    # A reviewer's edit replaces the generated output (the generated one stays in the attempts).
    output = item.edited_output if item.edited_output is not None else item.output
    record: dict[str, Any] = {
        "item_id": item.id,
        "batch_id": item.batch_id,
        "line": item.line_no,
        "key": item.client_key,
        "kind": item.kind,
        "status": item.status,
        "decision": decision_of(item.status, item.review_status),
        "input": item.input,
        "output": output,
        "final_path": item.final_path,
        "error": item.error,
        "review_status": item.review_status,
        "edited": item.edited_output is not None,
        "review": None if latest is None else {
            "decision": latest.decision,
            "reviewer": latest.reviewer_name,
            "note": latest.note,
            "at": latest.created_at.isoformat(),
        },
        "reports": final_attempt.reports if final_attempt else [],
    }
    if item.kind == "product" and output:
        try:
            record["record"] = json.loads(output)
        except json.JSONDecodeError:
            record["record"] = None
    return record
