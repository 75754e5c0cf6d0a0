"""Bearer-token authentication for /api (tokens from `hybridgen tokens create`)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hybridgen.admin.auth import logged_in_admin
from service.accounts import user_for_token

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
    if credentials is None and logged_in_admin(request.app.state.services.sessions, request):
        return
    require_token(request, credentials)
