"""The sandbox attack sent the way an attacker with one API token would: a code job whose
`test_setup` switches off the audit hook and goes for the worker (a command as root, the session
key, the worker's environment with the database URL, the serve port, Redis, the database), sent
through POST /api/batches, run by a real worker on PostgreSQL + Redis. The item's stored report
must show every attempt failed, and nothing secret may come back through the API."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import select

from hybridgen.app import create_app
from service.accounts import create_token, create_user
from pipeline.settings import Settings
from service.storage.db import session_factory
from service.storage.models import Item
from tests.fault_helpers import fault_env
from tests.helpers import WorkerProcess, run_cli, wait_for
from tests.live_server import LiveServer

pytestmark = pytest.mark.integration

SECRET_KEY = "e2e-session-key-" + uuid.uuid4().hex

ATTACK = """
import sys, os, socket
m = sys.modules['__main__']
m.BLOCKED.clear(); m.BLOCKED_IMPORTS.clear()
import subprocess
def attempt(name, fn):
    try:
        print(name, 'GOT', repr(fn())[:60])
    except BaseException as e:
        print(name, 'FAILED', type(e).__name__)
def environ_of_every_process():
    return [open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') if p.isdigit() and p != '1']
attempt('id', lambda: subprocess.run(['id'], capture_output=True).stdout)
attempt('key', lambda: open(DATA_DIR + '/secret_key').read())
attempt('environ', lambda: [e for e in environ_of_every_process() if 'HYBRIDGEN' in e][0])
for name, port in (('serve', SERVE_PORT), ('redis', 6379), ('postgres', 5432)):
    attempt(name, lambda: socket.create_connection(('127.0.0.1', port), timeout=2))
attempt('uid0', lambda: [0][os.getuid()])
"""


def test_a_test_setup_attack_through_the_api_is_contained(tmp_path, pg_url, redis_url, model_cache_dir):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secret_key").write_text(SECRET_KEY)
    env = fault_env(tmp_path, model_cache_dir, database_url=pg_url, broker_url=redis_url, secret_key=SECRET_KEY,
                    reaper_interval_s=0)
    assert run_cli(["db", "upgrade"], env).returncode == 0
    with session_factory(pg_url)() as s:
        create_user(s, "mallory", "a long enough password")
        token = create_token(s, "mallory").token
        s.commit()
    settings = Settings(data_dir=data_dir, database_url=pg_url, broker_url=redis_url, queue_name=env["HYBRIDGEN_QUEUE_NAME"],
                        secret_key=SECRET_KEY)
    with LiveServer(create_app(settings)) as server:
        setup = ATTACK.replace("DATA_DIR", repr(str(data_dir))).replace("SERVE_PORT", str(server.port))
        job = {"kind": "code", "input": {"prompt": "def f():\n    \"\"\"Return 1.\"\"\"", "tests": ["assert f() == 1"],
                                         "test_setup": setup}}
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            r = api.post("/api/batches?mode=ar", content=json.dumps(job), headers={"Content-Type": "application/x-ndjson"})
            assert r.status_code == 201, r.text
            batch = api.get(r.json()["links"]["batch"]).json()
            worker = WorkerProcess(env, tmp_path / "worker.log", "--concurrency", "1")
            try:
                wait_for(lambda: api.get(f"/api/batches/{batch['batch_id']}").json()["progress"] == 1.0, 300,
                         "the attack job to finish", on_timeout=worker.log)
            finally:
                worker.stop()
            with session_factory(pg_url)() as s:
                item_id = s.execute(select(Item.id).where(Item.batch_id == batch["batch_id"])).scalar_one()
            detail = api.get(f"/api/items/{item_id}")
            assert detail.status_code == 200
            body = detail.text
    reports = [rep for a in detail.json()["attempts"] for rep in a["reports"] if rep["validator"] == "sandbox_tests"]
    assert reports, "the sandbox must have run the job's tests"
    for report in reports:
        assert not report["passed"]
        out = report["details"]["stdout_tail"]
        for name in ("id", "key", "environ", "serve", "redis", "postgres", "uid0"):
            assert f"{name} FAILED" in out, out
        assert " GOT " not in out, out
    assert SECRET_KEY not in body and pg_url not in body
    assert "uid=0" not in body
