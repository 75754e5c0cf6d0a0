"""Bearer-token authentication for /api (tokens from `hybridgen tokens create`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipeline.accounts import user_for_token
from pipeline.storage.models import User

bearer = HTTPBearer(auto_error=False, description="An API token from `hybridgen tokens create`.")


@dataclass(frozen=True)
class ApiUser:
    id: int
    username: str


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiUser:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing API token: send `Authorization: Bearer <token>`",
                            headers={"WWW-Authenticate": "Bearer"})
    services = request.app.state.services
    with services.sessions.begin() as session:
        user = user_for_token(session, credentials.credentials)
        if user is None:
            raise HTTPException(401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"})
        return ApiUser(user.id, user.username)


def require_token_or_admin(request: Request,
                           credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    """For the API docs: a logged-in admin's browser may read them too."""
    user_id = request.session.get("user_id")
    if user_id and credentials is None:
        with request.app.state.services.sessions() as session:
            user = session.get(User, int(user_id))
            if user is not None and user.is_admin and not user.disabled:
                return
    require_token(request, credentials)
