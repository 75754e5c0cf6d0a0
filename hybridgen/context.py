"""What every command needs: settings, a migrated database, the Celery app (built on demand)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property

import click
from sqlalchemy.orm import Session, sessionmaker

from migrations import runner
from pipeline.settings import Settings, SettingsError, check_device, check_paths
from service.storage.db import session_factory


@dataclass
class CliContext:
    settings: Settings
    _checked_db: bool = field(default=False, init=False)

    @classmethod
    def from_env(cls, *, generates: bool = False) -> "CliContext":
        """Every setting checked, before a command stores or loads anything; `generates`: this process
        will load models, so the device must exist here too."""
        try:
            settings = Settings.from_env()
            check_paths(settings, create_data_dir=_init_given())
            if generates:
                check_device(settings)
        except SettingsError as e:
            raise click.ClickException(str(e)) from None
        configure_logging(settings.log_level)
        return cls(settings)

    def sessions(self) -> sessionmaker[Session]:
        """A session factory on a database at the latest schema.

        The embedded SQLite database is created/upgraded automatically (zero setup); a configured
        database is never migrated implicitly: production upgrades are an explicit step.
        """
        url = self.settings.resolved_database_url
        if not self._checked_db:
            if not self.settings.database_url:
                runner.upgrade(url)
            elif not runner.is_up_to_date(url):
                raise click.ClickException(
                    f"the database at {safe_url(url)} is not at the latest schema "
                    f"({runner.current_revision(url) or 'empty'} != {runner.head_revision()}); "
                    "run `hybridgen db upgrade` first"
                )
            self._checked_db = True
        return session_factory(url)

    @cached_property
    def celery(self):
        from workers.app import create_app

        return create_app(self.settings)


def _init_given() -> bool:
    """`hybridgen --init ...`: a data folder that does not exist yet may be created."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("init"))


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparsable url>"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Library chatter (progress bars, deprecation notes) is noise for a CLI user.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for noisy in ("transformers", "alembic", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
