"""List filters for the review app, in sqladmin's filter protocol.

Values come from the query string, so each filter checks its value against what it offers and
ignores anything else; comparisons are bound parameters, never SQL text.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import Select, desc, select

from service.storage.models import AttemptPath, Batch, Item, ItemStatus
from service.storage.types import parse_id
from pipeline.validation import REPORT_NAMES

ALL = "__all"


class _Filter:
    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"
    title = ""
    parameter_name = ""

    async def lookups(self, request, model, run_query: Callable[[Select], Any]) -> list[tuple[str, str]]:
        raise NotImplementedError

    async def get_filtered_query(self, query: Select, value: Any, model: Any) -> Select:
        raise NotImplementedError


class ChoiceFilter(_Filter):
    """Equality on a column, for a fixed set of values."""

    def __init__(self, column, title: str, parameter_name: str, values: list[tuple[str, str]]):
        self.column, self.title, self.parameter_name, self.values = column, title, parameter_name, values

    async def lookups(self, request, model, run_query):
        return [(ALL, "All")] + self.values

    async def get_filtered_query(self, query, value, model):
        if value in {v for v, _ in self.values}:
            return query.where(self.column == value)
        return query


class BatchFilter(_Filter):
    title = "Batch"
    parameter_name = "batch"

    async def lookups(self, request, model, run_query):
        rows = await run_query(select(Batch.id, Batch.name).order_by(desc(Batch.id)).limit(30))
        return [(ALL, "All")] + [(str(i), f"#{i} {name}"[:60]) for i, name in rows]

    async def get_filtered_query(self, query, value, model):
        batch_id = parse_id(value)
        return query if batch_id is None else query.where(Item.batch_id == batch_id)


class FailingValidatorFilter(_Filter):
    title = "Failing validator"
    parameter_name = "failing"

    def __init__(self):
        self.values = [(n, n) for n in REPORT_NAMES]

    async def lookups(self, request, model, run_query):
        return [(ALL, "All")] + self.values

    async def get_filtered_query(self, query, value, model):
        if value in {v for v, _ in self.values}:
            return query.where(Item.failed_validators.contains(f",{value},", autoescape=True))
        return query


def item_filters() -> list[_Filter]:
    return [
        ChoiceFilter(Item.status, "Status", "status", [(s.value, s.value) for s in ItemStatus]),
        BatchFilter(),
        ChoiceFilter(Item.kind, "Kind", "kind", [(k, k) for k in ("article", "product", "code")]),
        ChoiceFilter(Item.final_path, "Path", "path", [
            (AttemptPath.hybrid.value, "hybrid (refiner)"),
            (AttemptPath.ar_fallback.value, "AR fallback"),
            (AttemptPath.ar.value, "AR (ar mode)"),
            (AttemptPath.plain.value, "plain prompt (plain mode)"),
        ]),
        FailingValidatorFilter(),
        ChoiceFilter(Item.review_status, "Review", "review", [
            (s, s) for s in ("approved", "rejected", "edited", "requeued")
        ]),
    ]
