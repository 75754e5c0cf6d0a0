"""Apply a prose validator to one field of a JSON output (e.g. a product record's description)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from validators.base import Report, ValidationContext


@dataclass(frozen=True)
class OnJsonField:
    inner: Any
    field: str

    @property
    def name(self) -> str:
        return f"{self.inner.name}[{self.field}]"

    def check(self, text: str, context: ValidationContext) -> Report:
        try:
            value = json.loads(text)
            field_text = value[self.field] if isinstance(value, dict) else None
        except (json.JSONDecodeError, KeyError, TypeError):
            field_text = None
        if not isinstance(field_text, str):
            # A broken record still shows its loops and debris: check the whole text, and fail either way.
            whole = self.inner.check(text, context)
            found = "" if whole.passed else f"; in the whole output: {whole.message}"
            return Report(self.name, False, 0.0, f"cannot check: no text field {self.field!r} in a JSON object{found}",
                          whole.evidence, {**whole.details, "field": self.field})
        report = self.inner.check(field_text, context)
        return Report(self.name, report.passed, report.score, report.message, report.evidence,
                      {**report.details, "field": self.field})
