"""What the batch page shows: progress and rates, review progress, its items a page at a time (with
a title and the flag message, as the review list has them), what the default export leaves out, and
the export download itself (the API's export code, behind the admin session)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request

from service.export import ExportOptions, decision_counts, export_summary
from service.review_list import NOT_REVIEWED, ItemFilter, list_page
from service.storage.queries import batch_summary

ITEMS_PER_PAGE = 25
# Review progress: the label, and the list filter that shows those items.
REVIEW_STATES = (("approved", "approved"), ("edited", "edited"), ("rejected", "rejected"),
                 ("not reviewed", NOT_REVIEWED))


def batch_page(session: Session, batch_id: int, page: int) -> dict[str, Any] | None:
    summary = batch_summary(session, batch_id)
    if summary is None:
        return None
    listing = list_page(session, ItemFilter(batch=batch_id), page=page, page_size=ITEMS_PER_PAGE,
                        sort_by="id", descending=False)
    decisions = decision_counts(session, batch_id)
    finished = summary["finished"]
    reviews = summary["reviews"]
    not_reviewed = finished - sum(reviews.get(s, 0) for s in ("approved", "edited", "rejected"))
    review_progress = [
        {"label": label, "review": value,
         "count": not_reviewed if value == NOT_REVIEWED else reviews.get(value, 0)}
        for label, value in REVIEW_STATES
    ]
    for row in listing.rows:  # read what the template touches while the session is open
        _ = row.item.review_status
    session.expunge_all()
    return {
        "summary": summary,
        "rows": listing.rows,
        "page": listing.page,
        "pages": max(1, -(-listing.count // ITEMS_PER_PAGE)),
        "review_progress": review_progress,
        "reviewed": finished - not_reviewed,
        "decisions": decisions,
        "default_export": export_summary(session, batch_id).as_dict(),
    }


def list_link(base: str, batch_id: int, **params: str) -> str:
    """The review list filtered to this batch and `params` (names as service.review_list reads them)."""
    return f"{base}?{urlencode({'batch': batch_id, **params})}"


def export_options(request: Request) -> ExportOptions:
    """The download's options from the page's form: unknown values are ignored (it is our own form)."""
    flag = lambda name: request.query_params.get(name) in ("1", "true", "on")  # noqa: E731
    return ExportOptions(reviewed_only=flag("reviewed_only"), include_rejected=flag("include_rejected"),
                         include_flagged=flag("include_flagged"))
