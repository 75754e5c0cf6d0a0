"""The item list's filter sidebar, in sqladmin's filter protocol.

What each value means lives in one place, `service.review_list.ItemFilter`, which the list, the
review queue and bulk decisions share; these classes only offer the values (the sidebar's links)
and, should sqladmin apply them itself, delegate to it. Values come from the query string, so
anything a filter does not offer is ignored; comparisons are bound parameters, never SQL text.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import Select, desc, select

from pipeline.validation import REPORT_NAMES
from service.review_list import NOT_REVIEWED, ItemFilter
from service.storage.models import AttemptPath, Batch, ItemStatus

ALL = "__all"


class _Filter:
    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"
    title = ""
    parameter_name = ""

    async def lookups(self, request, model, run_query: Callable[[Select], Any]) -> list[tuple[str, str]]:
        raise NotImplementedError

    async def get_filtered_query(self, query: Select, value: Any, model: Any) -> Select:
        # Dialect-independent: the search term is no sidebar filter.
        return query.where(*ItemFilter.from_params({self.parameter_name: value}).conditions("any"))


class ChoiceFilter(_Filter):
    """A fixed set of values."""

    def __init__(self, title: str, parameter_name: str, values: list[tuple[str, str]]):
        self.title, self.parameter_name, self.values = title, parameter_name, values

    async def lookups(self, request, model, run_query):
        return [(ALL, "All")] + self.values


class BatchFilter(_Filter):
    title = "Batch"
    parameter_name = "batch"

    async def lookups(self, request, model, run_query):
        rows = await run_query(select(Batch.id, Batch.name).order_by(desc(Batch.id)).limit(30))
        return [(ALL, "All")] + [(str(i), f"#{i} {name}"[:60]) for i, name in rows]


def item_filters() -> list[_Filter]:
    return [
        ChoiceFilter("Review", "review", [
            (NOT_REVIEWED, "not reviewed"), ("approved", "approved"), ("rejected", "rejected"),
            ("edited", "edited"), ("requeued", "requeued"),
        ]),
        ChoiceFilter("Status", "status", [(s.value, s.value) for s in ItemStatus]),
        ChoiceFilter("Kind", "kind", [(k, k) for k in ("article", "product", "code")]),
        # A plain name also matches the validator run on one field: degeneration[description].
        ChoiceFilter("Failing validator", "failing", [(n, n) for n in REPORT_NAMES]),
        BatchFilter(),
        ChoiceFilter("Path", "path", [
            (AttemptPath.hybrid.value, "hybrid (refiner)"),
            (AttemptPath.ar_fallback.value, "AR fallback"),
            (AttemptPath.ar.value, "AR (ar mode)"),
            (AttemptPath.plain.value, "plain prompt (plain mode)"),
        ]),
    ]
