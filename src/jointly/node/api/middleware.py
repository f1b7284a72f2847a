"""An ASGI guard in front of the API: bounded request bodies and no caching of answers.

A request body over ``max_body_bytes`` is refused with 413 before the app
parses it: at once when ``Content-Length`` says so, otherwise as soon as the
streamed (chunked) body passes the limit.  Answers under ``/api`` are marked
``Cache-Control: no-store`` (they carry tokens, job results and ledger data
that no shared cache should keep) and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: a job spec is the largest body the API takes
DEFAULT_MAX_BODY_BYTES = 1 << 20

_EXTRA_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


class RequestGuard:
    """Wraps an ASGI app; see the module docstring."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, prefix: str = "/api") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix

    def _too_large(self) -> str:
        return f"request body over {self.max_body_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_json(send, 413, {"detail": self._too_large()})
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, detail=self._too_large())
            return message

        mark = str(scope.get("path", "")).startswith(self.prefix)

        async def marked_send(message: Message) -> None:
            if mark and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_EXTRA_HEADERS]}
            await send(message)

        await self.app(scope, limited_receive, marked_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *_EXTRA_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
