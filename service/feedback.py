"""Reviewers' feedback on the quality gate, and the same read back as defect labels.

Two labels, each a `Feedback` row:
- `false_flag`: a failing report (validator name as stored, e.g. `degeneration[description]`) that a
  reviewer says is wrong about this output;
- `missed_defect`: a defect of a rubric class (docs/review-rubric.md section 3) that no validator caught.

`feedback_labels` turns them into the rubric's label format (section 5), one line per output (attempt),
so `benchmarks/validators.py --feedback-db` can use them as one more labelled set beside the defect set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.models import Attempt, Feedback, FeedbackLabel, Item
from service.storage.types import utcnow

MAX_NOTE_CHARS = 5_000


@dataclass(frozen=True)
class DefectClass:
    id: str
    kinds: frozenset[str]
    severity: str
    """The class's severity when the rubric's rule cannot be applied from the label alone: its usual
    one ("critical" where the rubric says critical for most cases, "minor" for the deletion test)."""


def _classes(rows: str) -> dict[str, DefectClass]:
    out = {}
    for row in rows.strip().splitlines():
        name, kinds, severity = row.split()
        out[name] = DefectClass(name, frozenset({"A": "article", "P": "product", "C": "code"}[k] for k in kinds),
                                severity)
    return out


# docs/review-rubric.md section 3, in its order (tests/test_review_compare.py checks the two agree).
DEFECT_CLASSES = _classes("""
repetition              AP  minor
duplicate-line          APC minor
meta-debris             APC minor
broken-heading          A   minor
structure               APC critical
off-topic               AP  minor
attribute-contradiction P   critical
unsupported-claim       P   minor
category-error          AP  critical
contradiction           AP  critical
bad-tagline             P   minor
hollow-code             C   critical
signature-changed       C   critical
truncated               APC critical
invalid-syntax          PC  critical
wrong-behaviour         C   critical
garbled                 AP  minor
factual-error           A   minor
""")


def classes_for(kind: str) -> list[DefectClass]:
    return [c for c in DEFECT_CLASSES.values() if kind in c.kinds]


class FeedbackError(ValueError):
    """Feedback that cannot be stored; the message names the item and what is wrong."""


class Labeller(Protocol):
    id: int | None
    username: str


def record_false_flag(session: Session, item_id: int, attempt_id: int, validator: str, labeller: Labeller,
                      note: str | None = None) -> Feedback:
    """The attempt's failing report of `validator` is wrong. Saying it twice stores it once."""
    attempt = _attempt_of(session, item_id, attempt_id)
    failing = [r.get("validator") for r in attempt.reports or [] if not r.get("passed", True)]
    if validator not in failing:
        raise FeedbackError(f"item {item_id}: attempt {attempt_id} has no failing report of {validator!r}"
                            + (f"; its failing reports: {', '.join(map(str, failing))}" if failing else
                               "; every report of it passed"))
    existing = session.execute(select(Feedback).where(
        Feedback.attempt_id == attempt_id, Feedback.label == FeedbackLabel.false_flag.value,
        Feedback.validator == validator, Feedback.labeller_name == labeller.username)).scalar_one_or_none()
    if existing is not None:
        return existing
    return _add(session, item_id, attempt_id, FeedbackLabel.false_flag, labeller, note, validator=validator)


def record_missed_defect(session: Session, item_id: int, attempt_id: int, defect_class: str, labeller: Labeller,
                         note: str | None = None) -> Feedback:
    """The attempt's output has a defect of `defect_class` that no validator reported."""
    attempt = _attempt_of(session, item_id, attempt_id)
    kind = attempt.item.kind
    known = DEFECT_CLASSES.get(defect_class)
    if known is None:
        raise FeedbackError(f"item {item_id}: {defect_class[:60]!r} is no defect class of docs/review-rubric.md; "
                            f"for a {kind}: {', '.join(c.id for c in classes_for(kind))}")
    if kind not in known.kinds:
        raise FeedbackError(f"item {item_id}: the class {defect_class} does not apply to a {kind}; "
                            f"for a {kind}: {', '.join(c.id for c in classes_for(kind))}")
    return _add(session, item_id, attempt_id, FeedbackLabel.missed_defect, labeller, note, defect_class=defect_class)


def _attempt_of(session: Session, item_id: int, attempt_id: int) -> Attempt:
    if session.get(Item, item_id) is None:
        raise FeedbackError(f"no item with id {item_id}")
    attempt = session.get(Attempt, attempt_id)
    if attempt is None or attempt.item_id != item_id:
        raise FeedbackError(f"item {item_id}: attempt {attempt_id} is not one of its attempts")
    return attempt


def _add(session: Session, item_id: int, attempt_id: int, label: FeedbackLabel, labeller: Labeller,
         note: str | None, **fields: Any) -> Feedback:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise FeedbackError(f"item {item_id}: note: expected at most {MAX_NOTE_CHARS} characters, got {len(note)}")
    if note is not None and "\x00" in note:
        raise FeedbackError(f"item {item_id}: note: NUL characters (\\u0000) are not allowed in text")
    row = Feedback(item_id=item_id, attempt_id=attempt_id, label=label.value, note=note,
                   labeller_id=labeller.id, labeller_name=labeller.username, created_at=utcnow(), **fields)
    session.add(row)
    session.flush()
    return row


def feedback_for_item(session: Session, item_id: int) -> list[Feedback]:
    return list(session.execute(select(Feedback).where(Feedback.item_id == item_id).order_by(Feedback.id)).scalars())


def output_id(item: Item, attempt: Attempt) -> str:
    """Like the defect set's `<job key>:<mode>:<path>:s<seed>`, with the attempt's id for the seed
    (the database does not keep seeds; the id names the output exactly)."""
    mode = (item.params or {}).get("mode") or item.batch.mode
    return f"{item.client_key or f'item-{item.id}'}:{mode}:{attempt.path}:a{attempt.id}"


def feedback_labels(session: Session) -> Iterator[dict[str, Any]]:
    """One label line per output that has feedback, in the rubric's format (section 5).

    - each missed defect is an entry of `defects`, with the class's usual severity and no evidence
      (the review app asks for the class and a note, not for a quote);
    - false flags have no entry in that format (it lists defects, not their absence): they are in
      `false_flags` (the validator names) and in `notes`.
    Beside the format's keys a line has `item_id`, `attempt_id` and `kind`, to join it to the
    stored attempt and its reports.
    """
    rows = list(session.execute(select(Feedback).order_by(Feedback.attempt_id, Feedback.id)).scalars())
    by_attempt: dict[int | None, list[Feedback]] = defaultdict(list)
    for row in rows:
        by_attempt[row.attempt_id].append(row)
    attempts = {a.id: a for a in session.execute(
        select(Attempt).where(Attempt.id.in_([i for i in by_attempt if i is not None]))).scalars()}
    for attempt_id, group in by_attempt.items():
        attempt = attempts.get(attempt_id)
        if attempt is None:
            continue  # feedback on an attempt that is gone (the row outlived it): no output to label
        item = attempt.item
        defects, flags, notes = [], [], []
        for f in group:
            if f.label == FeedbackLabel.missed_defect.value:
                cls = DEFECT_CLASSES.get(f.defect_class or "")
                defects.append({"class": f.defect_class, "severity": cls.severity if cls else "minor",
                                "evidence": ""})
                if f.note:
                    notes.append(f"{f.defect_class}: {f.note}")
            elif f.validator not in flags:
                flags.append(f.validator)
                notes.append(f"false flag: {f.validator}" + (f" ({f.note})" if f.note else ""))
        yield {
            "output_id": output_id(item, attempt),
            "labeller": "+".join(sorted({f.labeller_name for f in group})),
            "defects": defects,
            "notes": "; ".join(notes),
            "false_flags": flags,
            "item_id": item.id,
            "attempt_id": attempt.id,
            "kind": item.kind,
        }


def false_flag_counts(session: Session) -> dict[str, dict[str, int]]:
    """Per validator name: its failing reports on the latest run of every item that has feedback or a
    review (the outputs a person looked at), and how many of them reviewers called false flags."""
    from service.storage.models import Review

    looked_at = set(session.execute(select(Feedback.item_id)).scalars()) | \
        set(session.execute(select(Review.item_id)).scalars())
    flagged = defaultdict(set)
    for f in session.execute(select(Feedback).where(Feedback.label == FeedbackLabel.false_flag.value)).scalars():
        flagged[f.validator].add(f.attempt_id)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"failing": 0, "false_flags": 0})
    if looked_at:
        attempts = list(session.execute(select(Attempt).where(Attempt.item_id.in_(looked_at))).scalars())
        latest = defaultdict(int)
        for a in attempts:
            latest[a.item_id] = max(latest[a.item_id], a.run_no)
        for a in attempts:
            if a.run_no != latest[a.item_id]:
                continue
            for r in a.reports or []:
                if not r.get("passed", True):
                    name = r.get("validator")
                    counts[name]["failing"] += 1
                    counts[name]["false_flags"] += a.id in flagged.get(name, ())
    return dict(counts)


def missed_defect_counts(session: Session) -> dict[str, int]:
    """Missed defects per rubric class."""
    counts: dict[str, int] = defaultdict(int)
    for f in session.execute(select(Feedback).where(Feedback.label == FeedbackLabel.missed_defect.value)).scalars():
        counts[f.defect_class] += 1
    return dict(counts)
