"""Alembic revisions: upgrade/downgrade on SQLite and PostgreSQL, and agreement with the live models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from migrations import runner
from service.storage.models import Base

TABLES = {"batches", "items", "attempts", "reviews", "users", "api_tokens"}


def _check_roundtrip(url: str) -> None:
    runner.upgrade(url)
    assert runner.current_revision(url) == runner.head_revision()
    engine = create_engine(url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()
    runner.downgrade(url, "base")
    assert runner.current_revision(url) is None
    engine = create_engine(url)
    try:
        assert not (TABLES & set(inspect(engine).get_table_names()))
    finally:
        engine.dispose()
    runner.upgrade(url)  # and back up again
    assert runner.is_up_to_date(url)


def test_sqlite_upgrade_downgrade_matches_models(sqlite_url):
    _check_roundtrip(sqlite_url)


@pytest.mark.integration
def test_postgres_upgrade_downgrade_matches_models(pg_url):
    _check_roundtrip(pg_url)


def test_revisions_do_not_import_live_models():
    from pathlib import Path

    for path in (Path(runner.__file__).parent / "versions").glob("*.py"):
        text = path.read_text()
        assert "pipeline" not in text, f"{path.name} imports live application code"
