"""Exception handlers: every error leaves the API as ``{"detail": "<clear message>"}`` with a fitting status.

* a :class:`~jointly.errors.JointlyError` gets its own ``http_status`` and message;
* a request that does not match its schema gets 422, with each problem named by where it is
  (``body.spec``, ``query.limit``) and never the offending input echoed back;
* anything else is a bug: logged by the server with its traceback, answered with a bare 500, so a
  caller never sees internals (paths, SQL, stack frames).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse

from jointly.errors import JointlyError

log = logging.getLogger("jointly.node.api")

#: at most this many validation problems are spelled out in one answer
MAX_PROBLEMS = 10


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def validation_problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    """``[{"loc": "body.spec", "msg": "..."}]`` from pydantic errors, without the inputs."""
    problems = []
    for error in list(errors)[:MAX_PROBLEMS]:
        if isinstance(error, dict):
            problems.append({"loc": _where(error.get("loc", ())), "msg": str(error.get("msg", "invalid"))})
    return problems


async def _jointly_error(request: Request, exc: JointlyError) -> JSONResponse:
    status = exc.http_status
    if status >= 500:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return JSONResponse({"detail": str(exc) or type(exc).__name__}, status_code=status)


async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = validation_problems(exc.errors())
    text = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems) or "malformed request"
    return JSONResponse({"detail": f"invalid request: {text}", "errors": problems}, status_code=422)


async def _response_invalid(request: Request, exc: ResponseValidationError) -> JSONResponse:
    problems = "; ".join(f"{p['loc']}: {p['msg']}" for p in validation_problems(exc.errors()))
    log.error("%s %s: the service returned a malformed answer: %s", request.method, request.url.path, problems)
    return JSONResponse({"detail": "internal error: the node produced a malformed answer"}, status_code=500)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server logs the traceback; one line here names the route
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"detail": "internal error (see the node's log)"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.exception_handler(JointlyError)(_jointly_error)
    app.exception_handler(RequestValidationError)(_request_invalid)
    app.exception_handler(ResponseValidationError)(_response_invalid)
    app.exception_handler(Exception)(_unexpected)
