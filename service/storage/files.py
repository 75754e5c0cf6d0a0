"""Private data files: the embedded SQLite database and broker, and the session key.

They hold password and token hashes, everything reviewers saw and decided, and the key that signs
admin cookies, so they are created mode 0600 (and the data folder 0700 when we create it) before
SQLite or kombu opens them; whatever the umask. SQLite gives the -wal and -shm files it creates the
mode of the database file, so those follow. A file that already exists keeps its mode: an operator
may have chosen a group on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """The folder, created 0700 if missing (its missing parents get the usual mode)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            pass
    return path


def private_file(path: Path) -> Path:
    """The file, created empty and 0600 if missing (never truncated)."""
    path = Path(path).expanduser()
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE))
    return path


def private_sqlite(url: str) -> None:
    """Create the SQLite file of `url` privately before a driver opens it; other URLs are left alone."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.database.startswith("file:"):
        private_file(Path(parsed.database))


def write_private_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically; the file is 0600 from its first byte (no chmod afterwards)."""
    path = Path(path).expanduser()
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a stale one from a crash may have another mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
