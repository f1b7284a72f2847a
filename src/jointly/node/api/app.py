"""The node's REST API: a FastAPI app over one node's services.

Layout after the FastAPI full-stack template: one router per resource in
:mod:`jointly.node.api.routes`, the caller and its role checks as ``Annotated``
dependencies in :mod:`jointly.node.api.deps`, request and response bodies in
:mod:`jointly.node.api.schemas`; the work itself is the service layer's
(:class:`~jointly.node.services.base.NodeServices`).  Interactive docs are at
``/docs``, the OpenAPI document at ``/openapi.json``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from jointly import __version__
from jointly.node.api.errors import install_error_handlers
from jointly.node.api.middleware import DEFAULT_MAX_BODY_BYTES, RequestGuard
from jointly.node.api.routes import approvals, datasets, health, jobs, ledger, models, users
from jointly.node.api.schemas import ErrorBody
from jointly.node.services.base import NodeServices

API_PREFIX = "/api"

_DESCRIPTION = """\
Operate one party's jointly node: register datasets, propose joint jobs, approve or reject
partners' jobs after reading what they would do with this party's data, follow jobs, and read
and verify the audit ledger.

Every route except `GET /api/health` needs `Authorization: Bearer <token>`.
Roles: **admin** (everything), **analyst** (datasets, jobs, approvals; no users),
**auditor** (read-only, may verify the ledger).
"""

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown token"},
    403: {"model": ErrorBody, "description": "The caller's role may not do this"},
    422: {"description": "The request does not match its schema"},
}


def create_api(
    services: NodeServices, *, title: str = "jointly node", max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    """A FastAPI app serving ``services`` under ``/api``; request bodies are limited to ``max_body_bytes``."""
    app = FastAPI(
        title=title,
        version=__version__,
        description=_DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.services = services
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes, prefix=API_PREFIX)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(health.router)
    for module in (users, datasets, jobs, approvals, models, ledger):
        api.include_router(module.router, responses=_ERRORS)
    app.include_router(api)
    return app
