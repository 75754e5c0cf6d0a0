"""The review list and the review queue: which items a filter selects, one page of them with what a
reviewer triages by (a title, a preview, the first failing message), and the queue's next item.

One `ItemFilter` serves the list, the queue ("oldest flagged, not-reviewed item of this filter"),
and bulk decisions over everything a filter matches, so the three can never disagree about which
items "this filter" means. It is built from query parameters (the list's URL), and its values are
checked: a value the filter cannot mean is ignored in the review app (`strict=False`, as a hand-edited
URL should still show a list) and refused with a message naming the parameter in strict mode (APIs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, defer

from service.storage.models import Attempt, AttemptPath, Item, ItemStatus
from service.storage.queries import first_failure
from service.storage.search import matches
from service.storage.types import parse_id

KINDS = ("article", "product", "code")
NOT_REVIEWED = "none"
REVIEW_VALUES = (NOT_REVIEWED, "approved", "rejected", "edited", "requeued")
# A report name as the validation stage writes it: `degeneration`, or `degeneration[description]`
# for a validator run on one field of a record.
VALIDATOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,60}(\[[A-Za-z0-9_]{1,60}\])?$")
MAX_SEARCH_CHARS = 200
PREVIEW_CHARS = 160
# The parameters a filter is made of, in the order they appear in URLs.
PARAMS = ("status", "kind", "batch", "path", "failing", "review", "search")


class FilterError(ValueError):
    """A filter parameter with a value it cannot have; the message names the parameter."""


@dataclass(frozen=True)
class ItemFilter:
    status: str | None = None
    kind: str | None = None
    batch: int | None = None
    path: str | None = None
    failing: str | None = None
    """A validator: `degeneration` matches items that failed `degeneration` on any field too."""
    review: str | None = None
    """approved | rejected | edited | requeued, or `none` for items nobody has decided on yet."""
    search: str | None = None
    """Words that must all occur in the item's input or deliverable (or its client key, whole)."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, strict: bool = False) -> "ItemFilter":
        values: dict[str, Any] = {}
        for name in PARAMS:
            raw = params.get(name)
            if raw is None or str(raw).strip() in ("", "__all"):
                continue
            try:
                values[name] = _checked(name, str(raw).strip())
            except FilterError:
                if strict:
                    raise
        return cls(**values)

    def params(self) -> dict[str, str]:
        """The filter as query parameters (only the ones set), for links that keep it."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}

    def is_empty(self) -> bool:
        return not self.params()

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        cond: list[ColumnElement[bool]] = []
        if self.status:
            cond.append(Item.status == self.status)
        if self.kind:
            cond.append(Item.kind == self.kind)
        if self.batch is not None:
            cond.append(Item.batch_id == self.batch)
        if self.path:
            cond.append(Item.final_path == self.path)
        if self.failing:
            cond.append(failing_condition(self.failing))
        if self.review == NOT_REVIEWED:
            cond.append(Item.review_status.is_(None))
        elif self.review:
            cond.append(Item.review_status == self.review)
        if self.search:
            cond.append(or_(matches(self.search, dialect), Item.client_key == self.search))
        return cond

    def queue(self) -> "ItemFilter":
        """The review queue of this filter: flagged and not reviewed, unless the filter itself says which
        status or review state to work through (e.g. `status=error`, or `review=rejected` to re-check)."""
        return replace(self, status=self.status or ItemStatus.flagged.value, review=self.review or NOT_REVIEWED)


def _checked(name: str, value: str) -> Any:
    if name == "status":
        return _one_of(name, value, [s.value for s in ItemStatus])
    if name == "kind":
        return _one_of(name, value, KINDS)
    if name == "path":
        return _one_of(name, value, [p.value for p in AttemptPath])
    if name == "review":
        return _one_of(name, value, REVIEW_VALUES)
    if name == "batch":
        batch = parse_id(value)
        if batch is None:
            raise FilterError(f"batch: expected a batch id (a whole number), got {value[:40]!r}")
        return batch
    if name == "failing":
        if not VALIDATOR_NAME.match(value):
            raise FilterError(f"failing: expected a validator name such as degeneration or "
                              f"degeneration[description], got {value[:60]!r}")
        return value
    if "\x00" in value:  # search; PostgreSQL text cannot hold NUL
        raise FilterError("search: NUL characters (\\u0000) are not allowed")
    if len(value) > MAX_SEARCH_CHARS:
        raise FilterError(f"search: at most {MAX_SEARCH_CHARS} characters, got {len(value)}")
    return value


def _one_of(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise FilterError(f"{name}: expected one of {', '.join(allowed)}; got {value[:40]!r}")
    return value


def failing_condition(validator: str) -> ColumnElement[bool]:
    """Items whose final attempt failed `validator`. `failed_validators` is ",a,b[field],": a plain
    name matches itself and every field it ran on (`degeneration` finds `degeneration[description]`);
    a name with a field matches only that field."""
    exact = Item.failed_validators.contains(f",{validator},", autoescape=True)
    if "[" in validator:
        return exact
    return or_(exact, Item.failed_validators.contains(f",{validator}[", autoescape=True))


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


# --- the list -----------------------------------------------------------------------------------


@dataclass
class ListRow:
    """One row of the review list: the item and what a reviewer decides from without opening it."""

    item: Item
    title: str
    preview: str
    message: str
    """The first failing report ("validator: message") of the final attempt, or the error's first line."""


@dataclass
class ListPage:
    rows: list[ListRow]
    count: int
    page: int
    page_size: int


SORTABLE = {"id": Item.id, "batch_id": Item.batch_id, "status": Item.status, "kind": Item.kind,
            "updated_at": Item.updated_at}


def list_page(session: Session, flt: ItemFilter, *, page: int = 1, page_size: int = 50,
              sort_by: str | None = None, descending: bool = True) -> ListPage:
    """One page of the items `flt` matches (newest first unless sorted otherwise), and how many match.

    Two queries for the items (count, page) and one for the final attempts' reports of the page.
    `page` past the end is clamped to the last page.
    """
    cond = flt.conditions(dialect_of(session))
    count = session.execute(select(func.count()).select_from(Item).where(*cond)).scalar_one()
    page = max(1, min(page, max(1, -(-count // page_size))))
    column = SORTABLE.get(sort_by or "id", Item.id)
    order = [column.desc() if descending else column.asc()]
    if column is not Item.id:
        order.append(Item.id.desc())
    items = list(session.execute(
        select(Item).options(defer(Item.search_text)).where(*cond).order_by(*order)
        .limit(page_size).offset((page - 1) * page_size)
    ).scalars())
    return ListPage(list_rows(session, items, flt), count, page, page_size)


def list_rows(session: Session, items: list[Item], flt: ItemFilter) -> list[ListRow]:
    """Each item with its title, preview and first failing message (the failing validator the filter
    names first); one query for the final attempts' reports of all of them."""
    final_ids = [i.final_attempt_id for i in items if i.final_attempt_id is not None]
    reports = dict(session.execute(select(Attempt.id, Attempt.reports).where(Attempt.id.in_(final_ids))).all()) \
        if final_ids else {}
    rows = []
    for item in items:
        title, preview = title_and_preview(item.kind, item.input, item.edited_output or item.output)
        rows.append(ListRow(item, title, preview, first_failure(reports.get(item.final_attempt_id) or [],
                                                                  item.error, flt.failing)))
    return rows


def matching_ids(session: Session, flt: ItemFilter, *, limit: int) -> tuple[list[int], int]:
    """The oldest `limit` ids `flt` matches and how many match in all (for bulk decisions)."""
    cond = flt.conditions(dialect_of(session))
    count = session.execute(select(func.count()).select_from(Item).where(*cond)).scalar_one()
    ids = list(session.execute(select(Item.id).where(*cond).order_by(Item.id).limit(limit)).scalars())
    return ids, count


# --- the queue ----------------------------------------------------------------------------------


def queue_count(session: Session, flt: ItemFilter) -> int:
    """How many items wait in the queue of `flt`."""
    cond = flt.queue().conditions(dialect_of(session))
    return session.execute(select(func.count()).select_from(Item).where(*cond)).scalar_one()


def queue_next(session: Session, flt: ItemFilter, after: int | None = None) -> int | None:
    """The queue's oldest item after `after` (none given: the oldest of all). Past the end it wraps
    around to the oldest, so items skipped with "next" come back once the rest are decided."""
    cond = flt.queue().conditions(dialect_of(session))
    query = select(Item.id).where(*cond).order_by(Item.id).limit(1)
    found = session.execute(query.where(Item.id > after)).scalar() if after is not None else None
    return found if found is not None else session.execute(query).scalar()


def queue_previous(session: Session, flt: ItemFilter, before: int) -> int | None:
    """The queue's newest item before `before`; before the start it wraps around to the newest."""
    cond = flt.queue().conditions(dialect_of(session))
    query = select(Item.id).where(*cond).order_by(Item.id.desc()).limit(1)
    found = session.execute(query.where(Item.id < before)).scalar()
    return found if found is not None else session.execute(query).scalar()


def queue_breakdown(session: Session, flt: ItemFilter) -> dict[str, dict[str, int]]:
    """Waiting items of the queue by kind and by failing validator (plain names), largest first."""
    cond = flt.queue().conditions(dialect_of(session))
    kinds = dict(session.execute(select(Item.kind, func.count()).where(*cond).group_by(Item.kind)).all())
    validators: dict[str, int] = {}
    for names, n in session.execute(select(Item.failed_validators, func.count()).where(*cond)
                                    .group_by(Item.failed_validators)).all():
        for name in {v.split("[")[0] for v in (names or "").split(",") if v}:
            validators[name] = validators.get(name, 0) + n
    by_size = lambda d: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))  # noqa: E731
    return {"kind": by_size(kinds), "failing": by_size(validators)}


# --- what a row shows ---------------------------------------------------------------------------


def title_and_preview(kind: str, input_: dict[str, Any] | None, output: str | None) -> tuple[str, str]:
    """A one-line title and the start of the text, from the deliverable where it has them (the
    article's heading, the product's title, the function's signature), else from the input."""
    input_ = input_ if isinstance(input_, dict) else {}
    output = output or ""
    asked = str(input_.get("topic") or input_.get("name") or input_.get("prompt") or "")
    title, body = "", output
    if kind == "article":
        heading = re.search(r"^#{1,3}\s+(.+)$", output, re.MULTILINE)
        title = heading.group(1) if heading else ""
        body = "\n".join(line for line in output.splitlines() if not line.lstrip().startswith("#"))
    elif kind == "product":
        try:
            record = json.loads(output) if output else {}
        except json.JSONDecodeError:
            record = {}
        if isinstance(record, dict):
            title = str(record.get("title") or "")
            body = " · ".join(str(record.get(k)) for k in ("tagline", "description") if record.get(k))
    elif kind == "code":
        signature = re.search(r"^\s*(?:async\s+)?def\s+([A-Za-z_]\w*\s*\([^)]*\))", output, re.MULTILINE)
        title = f"def {signature.group(1)}" if signature else ""
        body = asked or output
    return _one_line(title or asked or f"{kind} item", 120), _one_line(body, PREVIEW_CHARS)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
