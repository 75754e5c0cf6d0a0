"""JSON: the text must parse, and match the kind's JSON schema when one is given."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from validators.base import Evidence, Report, ValidationContext, line_span


@dataclass(frozen=True)
class JsonSyntax:
    schema: dict[str, Any] | None = None
    name: str = "json_schema"
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.schema is not None:
            jsonschema.Draft202012Validator.check_schema(self.schema)
            object.__setattr__(self, "_validator", jsonschema.Draft202012Validator(self.schema))

    def check(self, text: str, context: ValidationContext) -> Report:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            start, end = line_span(text, e.lineno)
            return Report(
                self.name, False, 0.0,
                f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                (Evidence(start, end, text[start:end], e.msg),),
            )
        except RecursionError:
            return Report(self.name, False, 0.0, "JSON nested too deeply")
        if self._validator is None:
            return Report(self.name, True, 1.0, "valid JSON")
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            msgs = [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors[:10]]
            return Report(self.name, False, 0.0, "; ".join(msgs), details={"errors": msgs})
        return Report(self.name, True, 1.0, "valid JSON matching the schema")
