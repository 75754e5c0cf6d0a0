"""Run a kind's validators over a deliverable; a crashing validator is a failed report, not a crash."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from pipeline.kinds import ContentKind
from pipeline.settings import Settings
from validators.base import Report, ValidationContext, Validator
from validators.registry import ALL_VALIDATORS, ValidatorSettings, build_validators
from validators.sandbox.runner import Limits

log = logging.getLogger(__name__)

# Besides the validators, the pipeline reports a failed plan, a generation with no output and a plain
# reply it could not read.
REPORT_NAMES = (*ALL_VALIDATORS, "plan", "generation", "plain_reply")


def validator_settings(settings: Settings) -> ValidatorSettings:
    return ValidatorSettings(
        disabled=settings.disabled_validators,
        nli_model=settings.nli_model,
        contradiction_threshold=settings.contradiction_threshold,
        attribute_threshold=settings.attribute_threshold,
        topic_threshold=settings.topic_threshold,
        sandbox=Limits(wall_s=settings.sandbox_timeout_s, cpu_s=settings.sandbox_cpu_s,
                       memory_mb=settings.sandbox_memory_mb, disk_mb=settings.sandbox_disk_mb,
                       isolation=settings.sandbox_isolation),
    )


@lru_cache(maxsize=16)
def _validators(kind_name: str, vsettings: ValidatorSettings, schema_key: str) -> tuple[Validator, ...]:
    from pipeline.kinds import get_kind

    return tuple(build_validators(kind_name, vsettings, getattr(get_kind(kind_name), "schema", None)))


def validators_for(kind: ContentKind, settings: Settings) -> tuple[Validator, ...]:
    return _validators(kind.name, validator_settings(settings), kind.name)


def validate(kind: ContentKind, text: str, job_input: dict[str, Any], settings: Settings,
             plan: dict[str, Any] | None = None) -> list[Report]:
    context = ValidationContext(kind=kind.name, input=job_input, plan=plan)
    reports = []
    for validator in validators_for(kind, settings):
        try:
            reports.append(validator.check(text, context))
        except Exception as e:  # noqa: BLE001 - a validator bug must flag the item, not lose it
            log.exception("validator %s crashed", validator.name)
            reports.append(Report(validator.name, False, 0.0, f"validator crashed: {type(e).__name__}: {e}"))
    return reports


def all_passed(reports: list[Report]) -> bool:
    return all(r.passed for r in reports)
