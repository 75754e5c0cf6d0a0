"""The in-memory view of a claimed item that generation paths work on (no ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.storage.queries import AttemptRecord


@dataclass(frozen=True)
class ItemJob:
    item_id: int
    run_no: int
    kind: str
    input: dict[str, Any]
    params: dict[str, Any]
    mode: str


@dataclass
class ItemOutcome:
    """What a generation path decided for one item: its final status and every attempt made."""

    status: str  # done | flagged | error
    output: str | None = None
    final_path: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    error: str | None = None
