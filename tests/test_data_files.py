"""The embedded database, the embedded broker and the session key are private files (0600 in a 0700
data folder), whatever the umask, from the moment they exist."""

from __future__ import annotations

import os
import stat

import pytest

from hybridgen.app import session_secret
from hybridgen.context import CliContext
from service.accounts import create_user
from pipeline.settings import Settings
from service.storage.db import dispose_engines
from workers import embedded_broker
from workers.app import create_app
from workers.enqueue import queued_task_count, send_tasks


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755 unless we say otherwise
    yield
    os.umask(old)
    dispose_engines()


def test_database_broker_and_key_are_created_private(tmp_path, open_umask):
    data = tmp_path / "data"
    settings = Settings(data_dir=data, cache_dir=tmp_path / "cache")
    sessions = CliContext(settings).sessions()  # as every command does: migrate, then open
    with sessions.begin() as s:  # a write: SQLite creates its -wal and -shm files
        create_user(s, "bob", "long enough")
    db = data / "hybridgen.sqlite"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        assert path.exists() and mode(path) == 0o600, (path.name, oct(mode(path)))
    assert mode(data) == 0o700

    app = create_app(settings)
    assert send_tasks(app, settings, [1, 2]) == 1
    assert queued_task_count(app, settings.queue_name) == 1
    assert mode(data / "broker.sqlite") == 0o600
    assert embedded_broker.prune_delivered(settings.resolved_broker_url) == 0

    session_secret(settings)
    assert mode(data / "secret_key") == 0o600
    assert sorted(p.name for p in data.iterdir() if mode(p) & 0o077) == [], "nothing in the data folder is shared"


def test_broker_alone_in_a_new_folder_is_private(tmp_path, open_umask):
    """PostgreSQL for data but the default broker: the broker creates the data folder itself."""
    data = tmp_path / "only-broker"
    settings = Settings(data_dir=data, database_url="postgresql+psycopg://unused@127.0.0.1/none")
    embedded_broker.prune_delivered(settings.resolved_broker_url)
    assert mode(data) == 0o700 and mode(data / "broker.sqlite") == 0o600
