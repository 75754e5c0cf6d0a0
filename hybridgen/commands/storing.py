"""Storing batch files for `submit` and `run`: every file checked first, then each one stored.

Resubmitting jobs resumes the batch they were stored as; when that batch was made for another mode
or model, resuming it would silently give something else than asked, so it is refused (before
anything is stored) unless `--new-batch` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click
from sqlalchemy.orm import Session, sessionmaker

from hybridgen.words import plural
from pipeline.settings import Settings
from service.spec import ParsedBatch
from service.submission import SubmitResult, resubmission_conflict, submit_batch

NEW_BATCH_HELP = ("Store the jobs as a new batch even when they were submitted before (e.g. to generate them "
                  "again in another mode or with another model).")


def store_files(sessions: sessionmaker[Session], parsed: list[tuple[Path, ParsedBatch]], settings: Settings, *,
                mode: str | None, new_batch: bool, say: Callable[[str], None],
                params: dict | None = None) -> list[tuple[Path, SubmitResult]]:
    """Store each parsed file as a batch, or find the batch that holds it; `say` reports what happened.
    `params` go with each new batch (e.g. its webhook URL)."""
    mode = mode or settings.default_mode
    if not new_batch:
        for path, batch in parsed:
            conflict = resubmission_conflict(sessions, batch, mode=mode, model=settings.model)
            if conflict:
                raise click.ClickException(f"{path}: {conflict}. Nothing was stored. Pass --new-batch to store "
                                           "them as a new batch, or resume the stored one with its own mode "
                                           "and HYBRIDGEN_MODEL.")
    results = []
    for path, batch in parsed:
        result = submit_batch(sessions, batch, name=path.name, mode=mode, model=settings.model, new_batch=new_batch,
                              params=params)
        if result.existing:
            say(stored_earlier_note(path, result))
        results.append((path, result))
    return results


def stored_earlier_note(path: Path, result: SubmitResult) -> str:
    """Which jobs were not stored again because their key was, and where they are."""
    shown = ", ".join(f"line {e.line_no} ({e.key!r}: item {e.item_id} of batch {e.batch_id}, {e.status})"
                      for e in result.existing[:5])
    more = f" and {len(result.existing) - 5} more" if len(result.existing) > 5 else ""
    where = ("every job is, so no batch was made for this file" if result.duplicate_batch else
             f"`hybridgen export {result.batch_id}` includes them, marked stored_earlier")
    under = "its key" if len(result.existing) == 1 else "their keys"
    return (f"{path}: {plural(len(result.existing), 'job')} already stored under {under}, not generated "
            f"again: {shown}{more}; {where}")
