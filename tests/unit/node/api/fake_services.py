"""An in-memory :class:`~jointly.node.services.base.NodeServices` for testing the REST API and the CLI.

It behaves like a node of party ``bank`` in a federation with ``telco``: the
errors it raises (NotFound, Conflict, ConfigError, DataError) are the ones the
real services raise, so the API's status mapping is tested without a node.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from jointly.config.job import JobSpec
from jointly.errors import ConfigError, Conflict, DataError, NotFound
from jointly.node.services.base import Json, JsonList, Principal, Role

PARTY = "bank"
TOKENS: dict[Role, str] = {"admin": "admin-token", "analyst": "analyst-token", "auditor": "auditor-token"}
#: files the fake node can "read": path -> columns
FILES: dict[str, list[dict[str, str]]] = {
    "/data/bank.csv": [{"name": "customer_id", "dtype": "string"}, {"name": "income", "dtype": "float64"}],
    "/data/telco.parquet": [{"name": "id", "dtype": "string"}, {"name": "minutes", "dtype": "int64"}],
}
T0 = 1_700_000_000.0


class FakeDatasets:
    def __init__(self) -> None:
        self.items: dict[str, Json] = {}

    def list(self) -> JsonList:
        return [dict(d) for d in self.items.values()]

    def get(self, name: str) -> Json:
        if name not in self.items:
            raise NotFound(f"no dataset {name!r} on node {PARTY!r}")
        return dict(self.items[name])

    def add(self, *, name: str, path: str, id_column: str, description: str, by: Principal) -> Json:
        if name in self.items:
            raise Conflict(f"dataset {name!r} is already registered")
        if path.endswith(".txt"):
            raise DataError(path, "not a CSV or Parquet file")
        if path not in FILES:
            raise ConfigError(f"no file {path!r} on node {PARTY!r}")
        columns = FILES[path]
        if id_column not in {c["name"] for c in columns}:
            raise ConfigError(f"{path}: no id column {id_column!r}")
        self.items[name] = {
            "name": name,
            "path": path,
            "format": "parquet" if path.endswith(".parquet") else "csv",
            "id_column": id_column,
            "columns": columns,
            "rows": 3,
            "description": description,
            "created": T0,
            "created_by": by.name,
            "secret_internal_field": "must not leave the node",
        }
        return self.get(name)

    def remove(self, name: str, *, by: Principal) -> None:
        self.get(name)
        del self.items[name]


class FakeJobs:
    def __init__(self, datasets: FakeDatasets) -> None:
        self.datasets = datasets
        self.jobs: dict[str, Json] = {}
        self._ids = itertools.count(1)
        #: called with the job on every get(), so a test can move a job along as a client polls it
        self.on_get: Callable[[Json], None] | None = None

    def _job(self, job_id: str) -> Json:
        if job_id not in self.jobs:
            raise NotFound(f"no job {job_id!r} on node {PARTY!r}")
        return self.jobs[job_id]

    def _event(self, job: Json, kind: str, message: str) -> None:
        job["events"].append({"time": T0 + len(job["events"]), "kind": kind, "stage": job["stage"], "message": message})

    def add(self, spec: Json, *, initiator: str, state: str = "pending") -> Json:
        job_spec = JobSpec.from_dict(spec, source="proposed job")
        ref = job_spec.parties.get(PARTY)
        if ref is not None and ref.dataset is not None:
            self.datasets.get(ref.dataset)
        job_id = f"{job_spec.name}-{next(self._ids):04d}"
        job = {
            "job_id": job_id,
            "name": job_spec.name,
            "kind": job_spec.kind,
            "initiator": initiator,
            "state": state,
            "stage": "",
            "created": T0,
            "finished": None,
            "parties": list(job_spec.party_names),
            "spec": spec,
            "usage": {
                "role": "receiver",
                "datasets": [{"name": ref.dataset or "", "path": ref.data or "", "columns": [ref.id_column]}]
                if ref is not None
                else [],
                "outputs": ["intersection ids (intersection.csv)"],
                "partners_learn": ["the size of this party's id set"],
                "privacy": {"protocol": "ECDH-PSI", "key_bits": None},
            },
            "approvals": [],
            "awaiting": list(job_spec.party_names),
            "progress": {},
            "error": None,
            "events": [],
            "bytes_sent": 0,
            "bytes_received": 0,
            "result": None,
            "expires_at": T0 + 86400,
        }
        self.jobs[job_id] = job
        self._event(job, "proposed", f"by {initiator}")
        return job

    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> Json:
        jobs = [j for j in reversed(self.jobs.values()) if state is None or j["state"] == state]
        keys = ("job_id", "name", "kind", "initiator", "state", "stage", "created", "finished", "parties")
        return {"total": len(jobs), "jobs": [{k: j[k] for k in keys} for j in jobs[offset : offset + limit]]}

    def get(self, job_id: str) -> Json:
        job = self._job(job_id)
        if self.on_get is not None:
            self.on_get(job)
        return dict(job)

    def propose(self, spec: Json, *, by: Principal) -> Json:
        job = self.add(spec, initiator=PARTY)
        return self.approve(job["job_id"], by=by, reason="proposed here")

    def cancel(self, job_id: str, *, by: Principal) -> Json:
        job = self._job(job_id)
        if job["state"] in ("succeeded", "failed", "cancelled", "rejected", "expired"):
            raise Conflict(f"job {job_id} already ended ({job['state']})")
        job["state"] = "cancelled"
        job["finished"] = T0 + 60
        self._event(job, "cancelled", f"by {by.name}")
        return self.get(job_id)

    def logs(self, job_id: str) -> JsonList:
        return list(self._job(job_id)["events"])

    def results(self, job_id: str) -> Json:
        job = self._job(job_id)
        if job["result"] is None:
            raise NotFound(f"job {job_id} has no results here ({job['state']})")
        return {"result": job["result"], "metrics": {"auc": 0.9}}

    def pending(self) -> JsonList:
        return [self.get(j) for j, job in self.jobs.items() if job["state"] == "pending" and PARTY in job["awaiting"]]

    def _decide(self, job_id: str, decision: str, by: Principal, reason: str) -> Json:
        job = self._job(job_id)
        if job["state"] != "pending" or PARTY not in job["awaiting"]:
            raise Conflict(f"job {job_id} is not waiting for {PARTY}'s decision ({job['state']})")
        job["approvals"].append(
            {"party": PARTY, "decision": decision, "user": by.name, "reason": reason, "created": T0 + 1}
        )
        job["awaiting"].remove(PARTY)
        if decision == "reject":
            job["state"] = "rejected"
            job["finished"] = T0 + 2
        elif not job["awaiting"]:
            job["state"] = "approved"
        self._event(job, decision, reason)
        return self.get(job_id)

    def approve(self, job_id: str, *, by: Principal, reason: str = "") -> Json:
        return self._decide(job_id, "approve", by, reason)

    def reject(self, job_id: str, *, by: Principal, reason: str) -> Json:
        return self._decide(job_id, "reject", by, reason)


class FakeModels:
    MODELS: JsonList = [  # noqa: RUF012
        {"name": "risk", "version": 1, "job_id": "risk-0001", "kind": "secureboost", "role": "guest", "created": T0},
    ]

    def list(self) -> JsonList:
        return [dict(m) for m in self.MODELS]

    def get(self, ref: str) -> Json:
        for m in self.MODELS:
            if ref in (m["job_id"], m["name"], f"{m['name']}@v{m['version']}"):
                return {**m, "party": PARTY, "guest": PARTY, "parties": [PARTY, "telco"], "features": ["income"]}
        raise NotFound(f"no model {ref!r} here")


class FakeLedger:
    def __init__(self) -> None:
        self.entries_: JsonList = [
            {
                "seq": i,
                "party": party,
                "time": T0 + i,
                "job_id": "psi-0001" if i % 2 else None,
                "event": "job_proposed" if i % 2 else "node_started",
                "stage": "",
                "data": {"i": i},
                "signature_ok": True,
            }
            for party in (PARTY, "telco")
            for i in range(5)
        ]
        self.problems: dict[str, list[str]] = {}

    def entries(
        self, *, party: str | None = None, job_id: str | None = None, offset: int = 0, limit: int = 100
    ) -> Json:
        party = party or PARTY
        if party not in (PARTY, "telco"):
            raise NotFound(f"no log of party {party!r} here")
        rows = [e for e in self.entries_ if e["party"] == party and (job_id is None or e["job_id"] == job_id)]
        size = sum(1 for e in self.entries_ if e["party"] == party)
        return {"party": party, "size": size, "entries": rows[offset : offset + limit]}

    def head(self) -> Json:
        return {"party": PARTY, "size": 5, "root": "ab" * 32, "time": T0 + 5, "cosigners": ["telco"]}

    def verify(self) -> Json:
        parties = {
            p: {"ok": not self.problems.get(p), "size": 5, "problems": self.problems.get(p, [])}
            for p in (PARTY, "telco")
        }
        return {"ok": all(v["ok"] for v in parties.values()), "checked_entries": 10, "parties": parties}


class FakeUsers:
    def __init__(self) -> None:
        self.users: dict[str, Json] = {}
        self.tokens: dict[str, str] = {}
        for role, token in TOKENS.items():
            self._put(role, role, token)

    def _put(self, name: str, role: Role, token: str) -> None:
        self.users[name] = {"name": name, "role": role, "created": T0, "disabled": False, "token_hash": "x"}
        self.tokens[token] = name

    def list(self) -> JsonList:
        return [dict(u) for u in self.users.values()]

    def create(self, *, name: str, role: Role) -> Json:
        if name in self.users:
            raise Conflict(f"user {name!r} exists")
        token = f"token-of-{name}"
        self._put(name, role, token)
        return {"name": name, "role": role, "token": token}

    def authenticate(self, token: str) -> Principal | None:
        name = self.tokens.get(token)
        if name is None or self.users[name]["disabled"]:
            return None
        return Principal(name, self.users[name]["role"])


class FakeServices:
    """The fake node; tests reach into its parts (``jobs.add``, ``ledger.problems``) to set up states."""

    def __init__(self) -> None:
        self._datasets = FakeDatasets()
        self._jobs = FakeJobs(self._datasets)
        self._models = FakeModels()
        self._ledger = FakeLedger()
        self._users = FakeUsers()
        self.broken = False

    @property
    def party(self) -> str:
        return PARTY

    @property
    def datasets(self) -> FakeDatasets:
        return self._datasets

    @property
    def jobs(self) -> FakeJobs:
        return self._jobs

    @property
    def models(self) -> FakeModels:
        return self._models

    @property
    def ledger(self) -> FakeLedger:
        return self._ledger

    @property
    def users(self) -> FakeUsers:
        return self._users

    def health(self) -> Json:
        if self.broken:
            raise RuntimeError("/secret/path/node.db is locked")
        running = sum(1 for j in self._jobs.jobs.values() if j["state"] == "running")
        return {"party": PARTY, "version": "0.1.0", "jobs_running": running, "warm": True}


def psi_spec(name: str = "overlap", *, dataset: str | None = None) -> dict[str, Any]:
    """A valid PSI job spec between bank and telco; bank's side from a registered dataset if given."""
    bank: dict[str, Any] = {"dataset": dataset} if dataset else {"data": "bank.csv", "id_column": "customer_id"}
    return {
        "name": name,
        "kind": "psi",
        "parties": {"bank": bank, "telco": {"data": "telco.csv"}},
        "psi": {"receivers": ["bank"]},
    }


def partner_job(services: FakeServices, name: str = "incoming") -> str:
    """A job telco proposed that waits for bank's decision; returns its id."""
    job = services.jobs.add(psi_spec(name), initiator="telco")
    job["approvals"].append({"party": "telco", "decision": "approve", "user": "t", "reason": "", "created": T0})
    job["awaiting"].remove("telco")
    return str(job["job_id"])


def _check_protocol(services: FakeServices) -> None:
    """mypy: the fake implements the protocol (not run; checked statically)."""
    from jointly.node.services.base import NodeServices

    _: NodeServices = services
