"""The text the review list searches: an item's input and its deliverable, kept in `items.search_text`.

Written by the service layer wherever input or output changes (submission, a finished run, a review
edit). PostgreSQL searches it through a GIN full-text index (`to_tsvector('simple', …)`, no stemming:
product names and identifiers match as typed); SQLite with LIKE.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal

from service.storage.models import Item

FTS_CONFIG = "simple"


def search_text(input_: dict[str, Any] | None, output: str | None, edited_output: str | None = None) -> str:
    parts = (json.dumps(input_ or {}, ensure_ascii=False, sort_keys=True), output or "", edited_output or "")
    return "\n".join(p for p in parts if p)


def matches(term: str, dialect: str) -> ColumnElement[bool]:
    """Items whose input or output holds every word of `term` (case-insensitive)."""
    words = [w for w in term.split() if w]
    if not words:
        return literal(True)
    if dialect == "postgresql":
        # plainto_tsquery ANDs the words and drops punctuation, so user text cannot inject query syntax.
        vector = func.to_tsvector(FTS_CONFIG, func.coalesce(Item.search_text, ""))
        return vector.op("@@")(func.plainto_tsquery(FTS_CONFIG, term))
    return and_(*[Item.search_text.ilike(f"%{escape_like(w)}%", escape="\\") for w in words])


def escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
