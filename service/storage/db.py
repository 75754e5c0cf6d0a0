"""Engine and session factory.

One engine per process and URL. Celery prefork children must not reuse the parent's pooled
connections, so workers call `dispose_engines()` after fork (see workers/app.py).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.storage.files import private_sqlite

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

# SQLite: writers from several processes (submit, workers) wait instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def get_engine(url: str) -> Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            _engines[url] = engine
        return engine


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        private_sqlite(url)  # 0600 before sqlite3 creates it with the umask's mode
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # pysqlite's implicit BEGIN handling is disabled so that we can issue BEGIN IMMEDIATE
            # ourselves; WAL lets readers proceed while a worker writes.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            # Take the write lock at the start of every transaction: SQLite otherwise upgrades a
            # read lock to a write lock mid-transaction and fails with "database is locked"
            # instead of waiting for busy_timeout.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # pool_pre_ping: a PostgreSQL restart must not leave dead connections in the pool.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def dispose_engines() -> None:
    """Forget pooled connections (after fork, or in tests between databases)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any exception."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
