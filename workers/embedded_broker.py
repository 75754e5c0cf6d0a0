"""kombu's SQLAlchemy transport, made usable as the zero-setup embedded broker.

Two changes to the stock transport:
- `polling_interval` (and other kombu-level options) are accepted in broker_transport_options.
  The stock Channel forwards every transport option to `create_engine`, which rejects them, so
  the poll interval would be stuck at the 1 s class default.
- SQLite waits for locks (busy timeout) instead of failing when a submitter and workers write
  at the same moment.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from service.storage.files import private_sqlite

ALIAS = "hybridgen-sqla"
# Options consumed by kombu itself, never meant for create_engine.
_KOMBU_OPTIONS = {
    "queue_tablename", "message_tablename", "callback", "errback", "max_retries", "interval_start",
    "interval_step", "interval_max", "retry_errors", "polling_interval", "visibility_timeout",
}


class Channel(kombu_sqla.Channel):
    def _engine_from_config(self):
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _KOMBU_OPTIONS}
        if conninfo.hostname.startswith("sqlite"):
            options.setdefault("connect_args", {"timeout": 30})
            # The data folder may not exist yet when only the database is configured elsewhere
            # (PostgreSQL + the default broker); SQLite would fail with "unable to open database file".
            # The file is created 0600: queued messages carry item ids and settings.
            private_sqlite(conninfo.hostname)
        return create_engine(conninfo.hostname, **options)


class Transport(kombu_sqla.Transport):
    Channel = Channel


def register() -> None:
    """Make `hybridgen-sqla+<sqlalchemy url>` broker URLs resolve to this transport."""
    TRANSPORT_ALIASES[ALIAS] = "workers.embedded_broker:Transport"


def embedded_url(url: str) -> str:
    """Route the stock `sqla+` / `sqlalchemy+` URLs through this transport."""
    for prefix in ("sqla+", "sqlalchemy+"):
        if url.startswith(prefix):
            return f"{ALIAS}+{url[len(prefix):]}"
    return url


def prune_delivered(broker_url: str) -> int:
    """Delete messages the SQLite broker already delivered; returns how many.

    kombu's SQLAlchemy transport marks a delivered message invisible and never deletes it, so the
    broker file grows with every task. An invisible message is never read again (a worker that
    shuts down cleanly re-publishes what it held as new messages), so deleting them is safe.
    """
    url = embedded_url(broker_url)
    if not url.startswith(ALIAS + "+"):
        return 0
    private_sqlite(url[len(ALIAS) + 1:])
    engine = create_engine(url[len(ALIAS) + 1:], connect_args={"timeout": 30})
    try:
        with engine.begin() as conn:
            return conn.exec_driver_sql("DELETE FROM kombu_message WHERE visible = 0").rowcount or 0
    except OperationalError:  # no table yet: nothing was ever sent
        return 0
    finally:
        engine.dispose()
