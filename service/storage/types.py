"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes everywhere.

    SQLite has no timezone support and returns naive datetimes; this attaches UTC on the way out so
    comparisons with `utcnow()` never mix naive and aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use service.storage.types.utcnow()")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Every id column is INTEGER (PostgreSQL int4): a larger value in a URL is no row, and must be
# answered as such before it reaches the driver (which raises "integer out of range" / OverflowError).
MAX_ID = 2**31 - 1


def parse_id(raw: object) -> int | None:
    """A row id from untrusted text ("12"), or None when it cannot be one (not digits, 0, above MAX_ID)."""
    text = str(raw)
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
