"""Run a kind's validators over a deliverable; a crashing validator is a failed report, not a crash."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.kinds import ContentKind
from validators.base import Report, ValidationContext

log = logging.getLogger(__name__)


def validate(kind: ContentKind, text: str, job_input: dict[str, Any], plan: dict[str, Any] | None = None) -> list[Report]:
    context = ValidationContext(kind=kind.name, input=job_input, plan=plan)
    reports = []
    for validator in kind.validators():
        try:
            reports.append(validator.check(text, context))
        except Exception as e:  # noqa: BLE001 - a validator bug must flag the item, not lose it
            log.exception("validator %s crashed", validator.name)
            reports.append(Report(validator.name, False, 0.0, f"validator crashed: {type(e).__name__}: {e}"))
    return reports


def all_passed(reports: list[Report]) -> bool:
    return all(r.passed for r in reports)
