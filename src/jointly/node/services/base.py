"""The service layer's contract: what the REST API and the CLI may ask of a node.

Routes stay thin: they authenticate the caller, check its role with
:func:`require`, call one service method and return its JSON-ready result.
Services raise :class:`~jointly.errors.JointlyError` subclasses
(``NotFound`` -> 404, ``Conflict`` -> 409, ``ConfigError``/``DataError`` -> 400/422,
``PermissionDenied`` -> 403), which the edges map to statuses and exit codes.

Roles:

``admin``    everything, including users
``analyst``  registers datasets, proposes/cancels jobs, approves or rejects them, reads everything
``auditor``  reads jobs, datasets' schemas, models and the ledger, and verifies the ledger; changes nothing
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from jointly.errors import PermissionDenied

Role = Literal["admin", "analyst", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "analyst", "auditor")
Json = dict[str, Any]
JsonList = list[Json]


@dataclass(frozen=True)
class Principal:
    """An authenticated API user of this node."""

    name: str
    role: Role


# what each role may do; routes call require(principal, action)
_ALLOWED: dict[str, frozenset[Role]] = {
    "read": frozenset(ROLES),
    "verify_ledger": frozenset(ROLES),
    "manage_datasets": frozenset({"admin", "analyst"}),
    "propose_job": frozenset({"admin", "analyst"}),
    "cancel_job": frozenset({"admin", "analyst"}),
    "decide_job": frozenset({"admin", "analyst"}),
    "manage_users": frozenset({"admin"}),
}
ACTIONS = tuple(_ALLOWED)


def require(principal: Principal, action: str) -> None:
    """Raise PermissionDenied unless ``principal``'s role may do ``action`` (one of :data:`ACTIONS`)."""
    allowed = _ALLOWED.get(action)
    if allowed is None:
        raise PermissionDenied(f"unknown action {action!r}")
    if principal.role not in allowed:
        raise PermissionDenied(f"user {principal.name!r} ({principal.role}) may not {action.replace('_', ' ')}")


class DatasetService(Protocol):
    def list(self) -> JsonList: ...
    def get(self, name: str) -> Json: ...
    def add(self, *, name: str, path: str, id_column: str, description: str, by: Principal) -> Json: ...
    def remove(self, name: str, *, by: Principal) -> None: ...


class JobService(Protocol):
    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> Json: ...
    def get(self, job_id: str) -> Json: ...
    def propose(self, spec: Json, *, by: Principal) -> Json: ...
    def cancel(self, job_id: str, *, by: Principal) -> Json: ...
    def logs(self, job_id: str) -> JsonList: ...
    def results(self, job_id: str) -> Json: ...
    def pending(self) -> JsonList: ...
    def approve(self, job_id: str, *, by: Principal, reason: str = "") -> Json: ...
    def reject(self, job_id: str, *, by: Principal, reason: str) -> Json: ...


class ModelService(Protocol):
    def list(self) -> JsonList: ...
    def get(self, ref: str) -> Json: ...


class LedgerService(Protocol):
    def entries(
        self, *, party: str | None = None, job_id: str | None = None, offset: int = 0, limit: int = 100
    ) -> Json: ...
    def head(self) -> Json: ...
    def verify(self) -> Json: ...


class UserService(Protocol):
    def list(self) -> JsonList: ...
    def create(self, *, name: str, role: Role) -> Json: ...
    def authenticate(self, token: str) -> Principal | None: ...


class NodeServices(Protocol):
    """Everything the API needs from one node."""

    @property
    def party(self) -> str: ...
    @property
    def datasets(self) -> DatasetService: ...
    @property
    def jobs(self) -> JobService: ...
    @property
    def models(self) -> ModelService: ...
    @property
    def ledger(self) -> LedgerService: ...
    @property
    def users(self) -> UserService: ...
    def health(self) -> Json: ...
