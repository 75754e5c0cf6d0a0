"""Users and API tokens: hashing, verification, revocation, disabled users, CLI management."""

from __future__ import annotations

import pytest

from service.accounts import (
    AccountError,
    authenticate_user,
    create_token,
    create_user,
    hash_password,
    revoke_token,
    user_for_token,
    verify_password,
)
from service.storage.db import session_factory
from service.storage.models import ApiToken, User
from tests.helpers import cli_env, run_cli


def test_password_hash_is_salted_and_verifies():
    a, b = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert a != b and "s3cret-pass" not in a
    assert verify_password("s3cret-pass", a) and verify_password("s3cret-pass", b)
    assert not verify_password("s3cret-pasS", a)
    assert not verify_password("anything", "garbage$hash")


def test_users_and_tokens(migrated_sqlite):
    sessions = session_factory(migrated_sqlite)
    with sessions.begin() as s:
        create_user(s, "bob", "long enough")
        with pytest.raises(AccountError, match="already exists"):
            create_user(s, "bob", "long enough")
        with pytest.raises(AccountError, match="at least 8"):
            create_user(s, "carol", "short")
        with pytest.raises(AccountError, match="username"):
            create_user(s, "bad name; drop", "long enough")
        issued = create_token(s, "bob", "ci")
    with sessions.begin() as s:
        stored = s.get(ApiToken, issued.id)
        assert stored.token_sha256 != issued.token and issued.token not in stored.token_sha256
        assert authenticate_user(s, "bob", "long enough").username == "bob"
        assert authenticate_user(s, "bob", "wrong password") is None
        assert authenticate_user(s, "nobody", "long enough") is None
        assert user_for_token(s, issued.token).username == "bob"
        assert user_for_token(s, issued.token + "x") is None
        assert s.get(ApiToken, issued.id).last_used_at is not None
    with sessions.begin() as s:
        revoke_token(s, issued.id)
    with sessions.begin() as s:
        assert user_for_token(s, issued.token) is None
        second = create_token(s, "bob")
        s.query(User).filter_by(username="bob").one().disabled = True
    with sessions.begin() as s:
        assert user_for_token(s, second.token) is None, "a disabled user's tokens must stop working"
        assert authenticate_user(s, "bob", "long enough") is None


def test_cli_users_and_tokens(tmp_path):
    env = cli_env(data_dir=str(tmp_path / "data"))
    made = run_cli(["users", "create", "admin", "--password-stdin"], env, stdin=b"a good password\n")
    assert made.returncode == 0, made.stderr.decode()
    again = run_cli(["users", "create", "admin", "--password-stdin"], env, stdin=b"a good password\n")
    assert again.returncode == 1 and "already exists" in again.stderr.decode()
    no_tty = run_cli(["users", "create", "other"], env)
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr.decode()
    token = run_cli(["tokens", "create", "--user", "admin", "--name", "crm"], env)
    assert token.returncode == 0, token.stderr.decode()
    secret = token.stdout.decode().strip()
    assert secret.startswith("hg_") and len(secret) > 30
    listed = run_cli(["tokens", "list"], env).stdout.decode()
    assert "crm" in listed and "active" in listed and secret not in listed
    assert run_cli(["tokens", "revoke", "1"], env).returncode == 0
    assert "revoked" in run_cli(["tokens", "list"], env).stdout.decode()
    missing = run_cli(["tokens", "revoke", "99"], env)
    assert missing.returncode == 1 and "no token with id 99" in missing.stderr.decode()
    unknown_user = run_cli(["tokens", "create", "--user", "ghost"], env)
    assert unknown_user.returncode == 1 and "no user named 'ghost'" in unknown_user.stderr.decode()


def test_serve_command_serves_api_and_review_app(tmp_path):
    import subprocess
    import time

    import httpx

    from tests.helpers import HYBRIDGEN
    from tests.live_server import free_port

    port = free_port()
    env = cli_env(data_dir=str(tmp_path / "data"), login_attempts_per_minute="2")
    proc = subprocess.Popen(HYBRIDGEN + ["serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/admin/login").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/batches").status_code == 401
        # By default no proxy is believed: an invented X-Forwarded-For per try buys no extra tries.
        tries = [httpx.post(f"http://127.0.0.1:{port}/admin/login", data={"username": "nobody", "password": "guess"},
                            headers={"X-Forwarded-For": f"198.51.100.{i}"}, timeout=30).status_code for i in range(3)]
        assert tries == [400, 400, 429]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0, "the session key is private"
