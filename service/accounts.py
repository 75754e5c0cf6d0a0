"""Admin users (hashed passwords) and API tokens (stored as SHA-256, shown once).

Passwords use scrypt from the standard library (memory-hard, salted, parameters stored with the
hash so they can be raised later without breaking old hashes). API tokens are 32 random bytes:
at that entropy a fast hash is enough, and it lets a request's token be looked up by its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.models import ApiToken, User
from service.storage.types import MAX_ID, utcnow

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_CHARS = 8
TOKEN_PREFIX = "hg_"
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class AccountError(ValueError):
    """A user or token request that cannot be honoured; the message says why."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(bytes.fromhex(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


# A hash of a random password: checking an unknown username costs as much as a known one, so
# response times do not reveal which usernames exist.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def normalize_username(username: str) -> str:
    """The form of a username that lookups compare: surrounding whitespace dropped.

    Login limits key on the same form, so " alice" and "alice" share one allowance.
    """
    return username.strip()


def create_user(session: Session, username: str, password: str, *, is_admin: bool = True) -> User:
    username = normalize_username(username)
    if not username or len(username) > 100 or not set(username) <= USERNAME_CHARS:
        raise AccountError(
            f"username {username!r}: expected 1-100 characters of letters, digits and . _ - @"
        )
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password: expected at least {MIN_PASSWORD_CHARS} characters")
    if session.execute(select(User.id).where(User.username == username)).first() is not None:
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> None:
    user = find_user(session, username)
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password: expected at least {MIN_PASSWORD_CHARS} characters")
    user.password_hash = hash_password(password)
    end_sessions(user)


def set_disabled(session: Session, username: str, disabled: bool) -> User:
    """Disable or enable a user; disabling also ends the user's review-app sessions."""
    user = find_user(session, username)
    user.disabled = disabled
    if disabled:
        end_sessions(user)
    return user


def end_sessions(user: User) -> None:
    """Make every review-app session of `user` stale (see User.session_version)."""
    user.session_version = (user.session_version or 0) + 1


def session_user(session: Session, user_id: object, version: object) -> User | None:
    """The enabled admin a review-app session belongs to, or None once that session was ended."""
    user = session.get(User, user_id) if isinstance(user_id, int) and 0 < user_id <= MAX_ID else None
    if user is None or not user.is_admin or user.disabled or version != user.session_version:
        return None
    return user


def _lookup(session: Session, username: str) -> User | None:
    name = normalize_username(username)
    if not name or "\x00" in name:  # no user has such a name, and PostgreSQL cannot even compare it
        return None
    return session.execute(select(User).where(User.username == name)).scalar_one_or_none()


def find_user(session: Session, username: str) -> User:
    user = _lookup(session, username)
    if user is None:
        raise AccountError(f"no user named {username!r}")
    return user


def authenticate_user(session: Session, username: str, password: str) -> User | None:
    """The enabled user with this name and password, or None (same cost either way)."""
    user = _lookup(session, username)
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash) or user.disabled:
        return None
    return user


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str
    """The secret itself; it is not stored and cannot be shown again."""
    prefix: str
    username: str
    name: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str, name: str = "") -> IssuedToken:
    user = find_user(session, username)
    if user.disabled:
        raise AccountError(f"user {username!r} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=(name or "default")[:100], prefix=token[:10],
                   token_sha256=token_sha256(token))
    session.add(row)
    session.flush()
    return IssuedToken(row.id, token, row.prefix, user.username, row.name)


def revoke_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise AccountError(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.execute(select(ApiToken).order_by(ApiToken.id)).scalars())


def user_for_token(session: Session, token: str) -> User | None:
    """The enabled user owning this live token (and note its use), or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(ApiToken).where(ApiToken.token_sha256 == token_sha256(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None or row.user.disabled:
        return None
    row.last_used_at = utcnow()
    return row.user
