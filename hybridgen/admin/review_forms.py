"""What every review form handler does first: check the CSRF token, read ids, find the reviewer."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from hybridgen.admin.csrf import FORM_FIELD, token_is_valid
from service.storage.models import User
from service.storage.types import MAX_ID, parse_id


async def checked_form(request: Request) -> FormData:
    """The POSTed form, if it carries the session's CSRF token (a 403 otherwise)."""
    form = await request.form()
    if not token_is_valid(request, form.get(FORM_FIELD)):
        raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page and try again")
    return form


def form_id(form: FormData, name: str) -> int:
    raw = str(form.get(name, "")).strip()
    value = parse_id(raw)
    if value is None:
        raise HTTPException(400, f"{name}: expected a whole number from 1 to {MAX_ID}; got {raw[:40]!r}")
    return value


def current_reviewer(session: Session, request: Request) -> User:
    return reviewer_by_id(session, int(request.session["user_id"]))


def reviewer_by_id(session: Session, user_id: int) -> User:
    """The logged-in reviewer's account, if it still exists and is enabled (a 403 otherwise)."""
    reviewer = session.get(User, user_id)
    if reviewer is None or reviewer.disabled:
        raise HTTPException(403, "your account no longer exists or is disabled")
    return reviewer
