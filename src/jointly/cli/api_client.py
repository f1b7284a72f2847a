"""A client of one node's REST API (httpx), for the ``jointly`` commands and for scripts.

Errors come back as the exception the node raised, rebuilt from the HTTP status
(404 -> :class:`NotFound`, 403 -> :class:`PermissionDenied` ...) with the node's
own message, so a command exits with the same code whether it ran locally or
through the API.  A node that cannot be reached is a :class:`TransportError`
naming the URL.  The token is sent only in the ``Authorization`` header and is
never part of a message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from jointly.errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    DataError,
    JointlyError,
    NotFound,
    PermissionDenied,
    TransportError,
)

ENV_NODE = "JOINTLY_NODE"
ENV_TOKEN = "JOINTLY_TOKEN"  # noqa: S105 (a variable name, not a secret)
#: written by a running node into its work directory: {"url": "http://127.0.0.1:PORT"}
API_FILE = "api.json"
#: the first admin's token, written by the node on its first start (mode 0600)
TOKEN_FILE = "admin.token"  # noqa: S105 (a file name)
DEFAULT_TIMEOUT = 30.0

Json = dict[str, Any]
JsonList = list[Json]

_BY_STATUS: dict[int, type[JointlyError]] = {
    400: ConfigError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: ConfigError,
    502: TransportError,
    503: TransportError,
    504: TransportError,
}


class RemoteDataError(DataError):
    """A :class:`DataError` the node reported (its message already names the file and the problem)."""

    def __init__(self, detail: str) -> None:
        self.path = ""
        self.row = None
        self.problem = detail
        JointlyError.__init__(self, detail)


@dataclass(frozen=True)
class NodeAddress:
    """Where a node's API is and the token to use (None: ask without one; the node will say 401)."""

    url: str
    token: str | None


def locate_node(
    *, node: str | None, token: str | None, workdir: Path | None, environ: Mapping[str, str] | None = None
) -> NodeAddress:
    """The node and token from, in order: ``--node``/``--token``, ``--workdir DIR`` (``DIR/api.json``,
    ``DIR/admin.token``), then ``JOINTLY_NODE``/``JOINTLY_TOKEN``."""
    env = os.environ if environ is None else environ
    url = node or (_read_api_file(workdir) if workdir is not None else None) or env.get(ENV_NODE) or None
    if url is None:
        raise ConfigError(f"which node? pass --node URL or --workdir DIR (of a running node), or set {ENV_NODE}")
    secret = token or (_read_token(workdir) if workdir is not None else None) or env.get(ENV_TOKEN) or None
    return NodeAddress(url, secret)


def _read_api_file(workdir: Path) -> str:
    path = workdir / API_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is a node running with --workdir {workdir}?") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from None
    url = raw.get("url") if isinstance(raw, dict) else None
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{path} has no 'url'")
    return url


def _read_token(workdir: Path) -> str | None:
    path = workdir / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the token in {path}: {exc}") from None


def _segment(value: str) -> str:
    return quote(value, safe="")


def error_from_response(response: httpx.Response, url: str) -> JointlyError:
    """The JointlyError matching an error answer of the node at ``url``."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    text = detail if isinstance(detail, str) and detail else f"HTTP {status} {response.reason_phrase}".strip()
    if status == 401:
        return AuthenticationError(
            f"the node at {url} refused the token ({text}); pass --token, set {ENV_TOKEN} or use --workdir"
        )
    if status == 422:
        if isinstance(body, dict) and "errors" in body:
            return ConfigError(text)  # the request did not match the API's schema
        return RemoteDataError(text)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(text)
    if status >= 500:
        return JointlyError(f"the node at {url} failed: {text}")
    return ConfigError(text)


class ApiClient:
    """Typed calls of a node's REST API; every method raises a :class:`JointlyError` on failure."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"node URL {base_url!r} must start with http:// or https://")
        self.base_url = url
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """``method /api{path}``; the decoded JSON answer (None for 204)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, f"/api{path}", params=query, json=body)
        except httpx.ConnectError as exc:
            raise TransportError(f"cannot reach the node at {self.base_url}: {exc}") from None
        except httpx.TimeoutException:
            raise TransportError(f"the node at {self.base_url} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"request to the node at {self.base_url} failed: {exc}") from None
        if response.is_error:
            raise error_from_response(response, self.base_url)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise TransportError(f"{self.base_url} did not answer with JSON: is it a jointly node?") from None

    def _dict(self, method: str, path: str, **kwargs: Any) -> Json:
        value = self.request(method, path, **kwargs)
        if not isinstance(value, dict):
            raise TransportError(f"unexpected answer to {method} {path} from {self.base_url}")
        return value

    def _list(self, method: str, path: str, **kwargs: Any) -> JsonList:
        value = self.request(method, path, **kwargs)
        if not isinstance(value, list):
            raise TransportError(f"unexpected answer to {method} {path} from {self.base_url}")
        return value

    # ------------------------------------------------------------ node and caller

    def health(self) -> Json:
        return self._dict("GET", "/health")

    def me(self) -> Json:
        return self._dict("GET", "/me")

    # ------------------------------------------------------------ datasets

    def datasets(self) -> JsonList:
        return self._list("GET", "/datasets")

    def dataset(self, name: str) -> Json:
        return self._dict("GET", f"/datasets/{_segment(name)}")

    def add_dataset(self, name: str, path: str, *, id_column: str, description: str = "") -> Json:
        body = {"name": name, "path": path, "id_column": id_column, "description": description}
        return self._dict("POST", "/datasets", body=body)

    def remove_dataset(self, name: str) -> None:
        self.request("DELETE", f"/datasets/{_segment(name)}")

    # ------------------------------------------------------------ jobs and approvals

    def jobs(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> Json:
        return self._dict("GET", "/jobs", params={"state": state, "limit": limit, "offset": offset})

    def job(self, job_id: str) -> Json:
        return self._dict("GET", f"/jobs/{_segment(job_id)}")

    def propose(self, spec: Mapping[str, Any]) -> Json:
        return self._dict("POST", "/jobs", body={"spec": dict(spec)})

    def cancel(self, job_id: str) -> Json:
        return self._dict("POST", f"/jobs/{_segment(job_id)}/cancel")

    def logs(self, job_id: str) -> JsonList:
        return self._list("GET", f"/jobs/{_segment(job_id)}/logs")

    def results(self, job_id: str) -> Json:
        return self._dict("GET", f"/jobs/{_segment(job_id)}/results")

    def approvals(self) -> JsonList:
        return self._list("GET", "/approvals")

    def approve(self, job_id: str, *, reason: str = "") -> Json:
        return self._dict("POST", f"/jobs/{_segment(job_id)}/approve", body={"reason": reason})

    def reject(self, job_id: str, *, reason: str) -> Json:
        return self._dict("POST", f"/jobs/{_segment(job_id)}/reject", body={"reason": reason})

    # ------------------------------------------------------------ models

    def models(self) -> JsonList:
        return self._list("GET", "/models")

    def model(self, ref: str) -> Json:
        return self._dict("GET", f"/models/{_segment(ref)}")

    # ------------------------------------------------------------ ledger

    def ledger(self, *, party: str | None = None, job_id: str | None = None, offset: int = 0, limit: int = 100) -> Json:
        params = {"party": party, "job_id": job_id, "offset": offset, "limit": limit}
        return self._dict("GET", "/ledger", params=params)

    def ledger_head(self) -> Json:
        return self._dict("GET", "/ledger/head")

    def verify_ledger(self) -> Json:
        return self._dict("POST", "/ledger/verify")

    # ------------------------------------------------------------ users

    def users(self) -> JsonList:
        return self._list("GET", "/users")

    def add_user(self, name: str, *, role: str) -> Json:
        return self._dict("POST", "/users", body={"name": name, "role": role})
