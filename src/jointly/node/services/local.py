"""The service layer of one running node: what the REST API and the CLI call.

Each service reads and writes through the node's storage and acts through the
node (proposals, decisions, cancellation, ledger).  What is protected here:
dataset rows never leave the node (only names, column names and types, and row
counts are shown); a job's result is this party's own; other parties' results
are never stored here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jointly.audit.codec import canonical_json
from jointly.config.job import JobSpec
from jointly.errors import ConfigError, Conflict, NotFound
from jointly.node.records import JobRecord
from jointly.node.services.base import Json, JsonList, Principal, Role
from jointly.node.services.ledger import LedgerServiceImpl
from jointly.node.storage import inspect_table
from jointly.runtime.models import ModelStore
from jointly.runtime.states import PENDING, TERMINAL
from jointly.runtime.usage import job_usage

if TYPE_CHECKING:
    from jointly.node.service import Node

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_name(name: str, what: str) -> None:
    if not name or len(name) > 128 or not set(name) <= _NAME_CHARS or name[0] in ".-":
        raise ConfigError(f"invalid {what} name {name!r}: use letters, digits, '.', '_' and '-' (up to 128)")


class DatasetServiceImpl:
    def __init__(self, node: Node) -> None:
        self._node = node

    def _view(self, ds: Any) -> Json:
        return {
            "name": ds.name,
            "path": ds.path,
            "format": ds.format,
            "id_column": ds.id_column,
            "columns": list(ds.columns),
            "rows": ds.rows,
            "description": ds.description,
            "created": ds.created,
        }

    def list(self) -> JsonList:
        return [self._view(d) for d in self._node.storage.datasets.list()]

    def get(self, name: str) -> Json:
        ds = self._node.storage.datasets.get(name)
        if ds is None:
            raise NotFound(f"no dataset {name!r} on node {self._node.party!r}")
        return self._view(ds)

    def add(self, *, name: str, path: str, id_column: str, description: str, by: Principal) -> Json:
        _check_name(name, "dataset")
        if self._node.storage.datasets.get(name) is not None:
            raise Conflict(f"dataset {name!r} is already registered")
        p = Path(path).expanduser()
        p = p if p.is_absolute() else self._node.data_dir / p
        fmt, columns, rows = inspect_table(p, id_column)
        self._node.storage.datasets.add(
            name=name,
            path=str(p.resolve()),
            format=fmt,
            id_column=id_column,
            columns=columns,
            rows=rows,
            description=description,
            created_by=by.name,
        )
        schema_hash = hashlib.sha256(canonical_json(columns)).hexdigest()
        self._node.trail.record(
            "", "dataset_registered", "", {"dataset": name, "rows": rows, "columns_sha256": schema_hash, "by": by.name}
        )
        return self.get(name)

    def remove(self, name: str, *, by: Principal) -> None:
        self.get(name)
        self._node.storage.datasets.remove(name)
        self._node.trail.record("", "dataset_removed", "", {"dataset": name, "by": by.name})


class JobServiceImpl:
    def __init__(self, node: Node) -> None:
        self._node = node

    def _record(self, job_id: str) -> JobRecord:
        record = self._node.store.get(job_id)
        if record is None:
            raise NotFound(f"no job {job_id!r} on node {self._node.party!r}")
        return record

    @staticmethod
    def _summary(record: JobRecord) -> Json:
        return {
            "job_id": record.job_id,
            "name": record.spec.get("name", ""),
            "kind": record.spec.get("kind", ""),
            "initiator": record.initiator,
            "state": record.state,
            "stage": record.stage,
            "created": record.created,
            "finished": record.finished,
            "parties": list(record.spec.get("parties", {})),
        }

    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> Json:
        store = self._node.store
        records = store.list(state=state, limit=limit, offset=offset)
        return {"total": store.count(state=state), "jobs": [self._summary(r) for r in records]}

    def get(self, job_id: str) -> Json:
        record = self._record(job_id)
        node = self._node
        view = record.public_view(include_result=True)
        spec = JobSpec.from_dict(record.spec, source=f"job {job_id}")
        ref = spec.parties[node.party]
        columns = None
        path = None
        if ref.dataset is not None:
            ds = node.storage.datasets.get(ref.dataset)
            if ds is not None:
                columns = [str(c["name"]) for c in ds.columns]
                path = ds.path
                spec = node.resolve_spec(spec)
        decisions = node.proposals.decisions(job_id)
        return {
            **self._summary(record),
            "spec": record.spec,
            "usage": job_usage(spec, node.party, columns=columns, dataset_path=path, dataset_name=ref.dataset),
            "approvals": [d.summary() for d in decisions.values()],
            "awaiting": [p for p in spec.party_names if p not in decisions] if record.state == PENDING else [],
            "progress": view.get("progress") or {},
            "error": view.get("error"),
            "events": self.logs(job_id),
            "bytes_sent": record.bytes_sent,
            "bytes_received": record.bytes_received,
            "result": view.get("result"),
            "expires_at": record.expires_at,
            "started": record.started,
        }

    def propose(self, spec: Json, *, by: Principal) -> Json:
        job = JobSpec.from_dict(spec, source="proposed job")
        job_id = self._node.propose(job, user=by.name)
        return self.get(job_id)

    def cancel(self, job_id: str, *, by: Principal) -> Json:
        record = self._record(job_id)
        if record.state in TERMINAL:
            raise Conflict(f"job {job_id} already ended ({record.state})")
        self._node.trail.timeline(job_id, "cancel_requested", record.stage, f"by {by.name}")
        self._node.cancel(job_id, by=self._node.party)
        return self.get(job_id)

    def logs(self, job_id: str) -> JsonList:
        self._record(job_id)
        return [
            {"time": e.time, "kind": e.kind, "stage": e.stage, "message": e.message}
            for e in self._node.storage.events.for_job(job_id)
        ]

    def results(self, job_id: str) -> Json:
        record = self._record(job_id)
        if record.state != "succeeded" or not record.result:
            raise NotFound(f"job {job_id} has no results here ({record.state})")
        metrics_path = Path(record.output_dir) / "metrics.json" if record.output_dir else None
        metrics = None
        if metrics_path is not None and metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
        return {"result": record.result, "metrics": metrics}

    def pending(self) -> JsonList:
        out = []
        for record in self._node.store.list(state=PENDING, limit=500):
            if self._node.party not in self._node.proposals.decisions(record.job_id):
                out.append(self.get(record.job_id))
        return out

    def approve(self, job_id: str, *, by: Principal, reason: str = "") -> Json:
        self._node.decide(job_id, True, user=by.name, reason=reason)
        return self.get(job_id)

    def reject(self, job_id: str, *, by: Principal, reason: str) -> Json:
        if not reason.strip():
            raise ConfigError("a rejection needs a reason")
        self._node.decide(job_id, False, user=by.name, reason=reason)
        return self.get(job_id)


class ModelServiceImpl:
    def __init__(self, node: Node) -> None:
        self._store = ModelStore(node.store.root)

    def list(self) -> JsonList:
        return [self._view(m) for m in self._store.list()]

    def get(self, ref: str) -> Json:
        return self._view(self._store.resolve(ref))

    @staticmethod
    def _view(info: Any) -> Json:
        return {**info.to_dict(), "job_id": info.model_id, "version": info.version}


class UserServiceImpl:
    def __init__(self, node: Node) -> None:
        self._users = node.storage.users

    def list(self) -> JsonList:
        return [
            {"name": u.name, "role": u.role, "created": u.created, "disabled": u.disabled} for u in self._users.list()
        ]

    def create(self, *, name: str, role: Role) -> Json:
        _check_name(name, "user")
        token = self._users.create(name, role)
        return {"name": name, "role": role, "token": token}

    def authenticate(self, token: str) -> Principal | None:
        user = self._users.by_token(token)
        if user is None or user.disabled:
            return None
        return Principal(user.name, user.role)


class LocalNodeServices:
    """:class:`~jointly.node.services.base.NodeServices` over a running :class:`Node`."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._datasets = DatasetServiceImpl(node)
        self._jobs = JobServiceImpl(node)
        self._models = ModelServiceImpl(node)
        self._ledger = LedgerServiceImpl(node)
        self._users = UserServiceImpl(node)

    @property
    def party(self) -> str:
        return self._node.party

    @property
    def datasets(self) -> DatasetServiceImpl:
        return self._datasets

    @property
    def jobs(self) -> JobServiceImpl:
        return self._jobs

    @property
    def models(self) -> ModelServiceImpl:
        return self._models

    @property
    def ledger(self) -> Any:
        return self._ledger

    @property
    def users(self) -> UserServiceImpl:
        return self._users

    def health(self) -> Json:
        return self._node.health()
