"""Shared fixtures: isolated settings, tiny models, real PostgreSQL / Redis databases per run.

Service fixtures skip with a reason when a server is unreachable on a developer's machine, but
fail under CI (CI=true), where the servers are part of the contract.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Triton kernels run in Triton's interpreter on machines without CUDA (must be set before any
# kernel module is imported: @triton.jit reads it when the kernel is defined).
try:
    import torch as _torch

    if not _torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover
    pass
# Tests never read the developer's own HYBRIDGEN_* configuration.
for _key in [k for k in os.environ if k.startswith("HYBRIDGEN_")]:
    del os.environ[_key]

import pytest

from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_HOST = "127.0.0.1"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need_service(ok: bool, what: str) -> None:
    if not ok:
        if in_ci():
            pytest.fail(f"{what} is not reachable; CI requires it")
        pytest.skip(f"{what} is not reachable on this machine")


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    """The user's real hybridgen cache: the converted default model is reused across runs."""
    return Settings().cache_dir


@pytest.fixture
def tiny_settings(tmp_path, model_cache_dir) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        cache_dir=model_cache_dir,
        model="tiny-llama",
        max_new_tokens=12,
        chunk_size=3,
        heartbeat_interval_s=0.5,
        stale_after_s=30,
        nli_model="none",  # rules only: the NLI model has its own (slow) tests
        # a random tiny model's logits are near-uniform, so bf16 rounding picks among near-ties at every
        # step; fp32 keeps pipeline tests exact (tests/test_engine.py covers bf16 on its own)
        dtype="float32",
    )


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture(scope="session")
def pg_server_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import psycopg

    name = f"hybridgen_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True,
                                connect_timeout=3)
    except psycopg.OperationalError:
        try:
            admin = psycopg.connect("host=127.0.0.1 port=5432 dbname=postgres", autocommit=True, connect_timeout=3)
        except psycopg.OperationalError:
            need_service(False, "PostgreSQL at 127.0.0.1:5432")
    user = admin.info.user
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"
    from service.storage.db import dispose_engines

    dispose_engines()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def pg_url(pg_server_url):
    """The session's PostgreSQL database, emptied (schema dropped) before each test."""
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_server_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    from service.storage.db import dispose_engines

    dispose_engines()
    return pg_server_url


_REDIS_DB = {"next": 9}


@pytest.fixture
def redis_url():
    """A Redis database number of its own (9-15), flushed before and after the test."""
    import redis

    db = _REDIS_DB["next"]
    _REDIS_DB["next"] = 9 + (db - 8) % 7
    client = redis.Redis(host=REDIS_HOST, port=6379, db=db, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        need_service(False, "Redis at 127.0.0.1:6379")
    client.flushdb()
    yield f"redis://{REDIS_HOST}:6379/{db}"
    client.flushdb()
    client.close()


@pytest.fixture
def migrated_sqlite(sqlite_url) -> str:
    from migrations import runner

    runner.upgrade(sqlite_url)
    return sqlite_url


@pytest.fixture
def migrated_pg(pg_url) -> str:
    from migrations import runner

    runner.upgrade(pg_url)
    return pg_url


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if in_ci():
            pytest.fail(f"{path} is missing; CI always has ../shared/data")
        pytest.skip(f"{path} is missing (../shared/data is not next to this checkout)")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request, tmp_path):
    """A migrated, empty database: SQLite file, or the session's PostgreSQL database."""
    from migrations import runner

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    runner.upgrade(url)
    return url


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """`cuda`-marked tests skip cleanly, with a reason, on machines without a GPU."""
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
