"""The one interface every validator implements.

A validator takes the produced text plus a context (the plan, the job's input) and returns a
Report: its name, passed or not, a score in [0, 1], evidence spans pointing into the text, and a
message a reviewer can act on. Reports are plain data (`as_dict`) so they can be stored as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Evidence:
    """A span of the checked text (character offsets) and why it matters."""

    start: int
    end: int
    text: str
    note: str = ""


@dataclass(frozen=True)
class Report:
    validator: str
    passed: bool
    score: float = 1.0
    message: str = ""
    evidence: tuple[Evidence, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["evidence"] = [asdict(e) for e in self.evidence]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        return cls(
            validator=d["validator"],
            passed=bool(d["passed"]),
            score=float(d.get("score", 1.0)),
            message=d.get("message", ""),
            evidence=tuple(Evidence(**e) for e in d.get("evidence", [])),
            details=d.get("details", {}),
        )


@dataclass(frozen=True)
class ValidationContext:
    """What a validator may know besides the text."""

    kind: str
    input: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None


class Validator(Protocol):
    name: str

    def check(self, text: str, context: ValidationContext) -> Report: ...


def line_span(text: str, line_no: int) -> tuple[int, int]:
    """Character offsets of 1-based line `line_no` in `text` (clamped to the text)."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return 0, 0
    line_no = max(1, min(line_no, len(lines)))
    start = sum(len(l) for l in lines[: line_no - 1])
    return start, start + len(lines[line_no - 1].rstrip("\r\n"))
