"""Dependencies of the routes: the node's services, the authenticated caller, and role checks.

Every route but ``GET /api/health`` takes one of the role aliases below
(``Reader``, ``DatasetManager`` ...), so a route cannot be written without
saying who may call it.  A missing or unknown token is answered with 401 and a
``WWW-Authenticate: Bearer`` challenge before any service is asked anything;
a known caller whose role may not do the action gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jointly.node.services.base import NodeServices, Principal, require

#: tokens are ~43 characters; anything far longer is refused before it reaches storage
MAX_TOKEN_LENGTH = 512

_bearer = HTTPBearer(auto_error=False, description="A user token made by `jointly user add` (or admin.token).")


def get_services(request: Request) -> NodeServices:
    """The services object :func:`jointly.node.api.app.create_api` put on the app."""
    return cast(NodeServices, request.app.state.services)


ServicesDep = Annotated[NodeServices, Depends(get_services)]


def _unauthorized(message: str, challenge: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": challenge})


def get_principal(
    services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller named by the ``Authorization: Bearer <token>`` header; 401 if missing or unknown."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("missing bearer token (send 'Authorization: Bearer <token>')", "Bearer")
    token = credentials.credentials
    principal = None if len(token) > MAX_TOKEN_LENGTH else services.users.authenticate(token)
    if principal is None:
        raise _unauthorized("unknown or disabled token", 'Bearer error="invalid_token"')
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def allowed(action: str) -> Callable[[Principal], Principal]:
    """A dependency that returns the caller if its role may do ``action``, else raises PermissionDenied (403)."""

    def check(principal: PrincipalDep) -> Principal:
        require(principal, action)
        return principal

    check.__name__ = f"allowed_{action}"
    return check


Reader = Annotated[Principal, Depends(allowed("read"))]
LedgerVerifier = Annotated[Principal, Depends(allowed("verify_ledger"))]
DatasetManager = Annotated[Principal, Depends(allowed("manage_datasets"))]
Proposer = Annotated[Principal, Depends(allowed("propose_job"))]
Canceller = Annotated[Principal, Depends(allowed("cancel_job"))]
Decider = Annotated[Principal, Depends(allowed("decide_job"))]
UserManager = Annotated[Principal, Depends(allowed("manage_users"))]
