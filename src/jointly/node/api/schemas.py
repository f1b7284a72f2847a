"""Request and response bodies of the node's REST API.

Inputs are strict (unknown fields are refused, names are checked) so that a
typo never silently does something else.  Outputs list exactly the fields a
caller may see: whatever else a service returns is dropped at the edge, so a
storage-only field (a token hash, a data row) cannot leak through a route.
Times are seconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jointly.node.services.base import Role

#: a registered dataset's name (the name a job spec's ``dataset:`` refers to)
DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
#: an API user's name
USER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: a job id, as the node makes them (and accepts from partners)
JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
#: a job state filter
JOB_STATE = r"^[a-z_]{1,32}$"
MAX_REASON = 2000
MAX_DESCRIPTION = 2000
MAX_PATH = 4096


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- inputs


class DatasetCreate(_In):
    """Register a table on this node: the file stays where it is; only its schema is read."""

    name: str = Field(pattern=DATASET_NAME, description="Name jobs use to refer to the table.")
    path: str = Field(min_length=1, max_length=MAX_PATH, description="Path of a CSV or Parquet file on the node.")
    id_column: str = Field(min_length=1, max_length=256, description="Column holding the join ids.")
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class JobProposal(_In):
    """Propose a joint job; the spec is checked by the node (kind, parties, datasets, parameters)."""

    spec: dict[str, Any] = Field(description="A job spec, as in a job YAML file.")


class ApproveBody(_In):
    reason: str = Field(default="", max_length=MAX_REASON)


class RejectBody(_In):
    reason: str = Field(min_length=1, max_length=MAX_REASON, description="Why: shown to every party of the job.")


class UserCreate(_In):
    name: str = Field(pattern=USER_NAME)
    role: Role


# ---------------------------------------------------------------- outputs


class Health(_Out):
    party: str
    version: str
    jobs_running: int
    warm: bool = Field(description="the node has loaded its federated-learning runtime (jobs start without waiting)")


class Me(_Out):
    name: str
    role: Role


class Column(_Out):
    name: str
    dtype: str


class Dataset(_Out):
    """A registered table's schema: column names and types, never its rows."""

    name: str
    path: str
    format: str
    id_column: str
    columns: list[Column]
    rows: int | None = None
    description: str = ""
    created: float
    created_by: str | None = None


class JobError(_Out):
    party: str
    stage: str
    reason: str


class JobSummary(_Out):
    job_id: str
    name: str
    kind: str
    initiator: str
    state: str
    stage: str = ""
    created: float
    finished: float | None = None
    parties: list[str]


class JobList(_Out):
    total: int
    jobs: list[JobSummary]


class DatasetUse(_Out):
    name: str = ""
    path: str = ""
    id_column: str | None = None
    label: str | None = None
    columns: list[str] = []


class Usage(_Out):
    """What the job would do with THIS party's data, for its operators to approve."""

    role: str | None = None
    datasets: list[DatasetUse] = []
    outputs: list[str] = []
    partners_learn: list[str] = []
    privacy: dict[str, Any] = {}


class Approval(_Out):
    party: str
    decision: Literal["approve", "reject"]
    user: str | None = None
    reason: str = ""
    created: float


class Event(_Out):
    time: float
    kind: str
    stage: str | None = None
    message: str = ""


class Job(JobSummary):
    """One job as this party's node sees it; ``result`` only when this party holds one."""

    spec: dict[str, Any]
    usage: Usage | None = None
    approvals: list[Approval] = []
    awaiting: list[str] = Field(default=[], description="Parties whose decision is still missing.")
    progress: dict[str, Any] = Field(default={}, description="task -> [done, total]")
    error: JobError | None = None
    events: list[Event] = []
    bytes_sent: int = 0
    bytes_received: int = 0
    result: dict[str, Any] | None = None
    started: float | None = None
    expires_at: float | None = Field(
        default=None, description="When a pending job expires unless every party approved."
    )


class JobResults(_Out):
    result: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


class Model(_Out):
    name: str
    version: int
    job_id: str
    kind: str
    role: str
    created: float


class ModelDetail(Model):
    """A model part's metadata (never its parameters)."""

    party: str | None = None
    guest: str | None = None
    parties: list[str] = []
    features: list[str] = []


class LedgerEntry(_Out):
    seq: int
    party: str
    time: float
    job_id: str | None = None
    event: str
    stage: str | None = None
    data: dict[str, Any] = {}
    signature_ok: bool


class LedgerPage(_Out):
    party: str
    size: int
    entries: list[LedgerEntry]


class LedgerHead(_Out):
    party: str
    size: int
    root: str
    time: float | None = None
    cosigners: list[str] = []


class PartyVerification(_Out):
    ok: bool
    size: int
    root: str = ""
    cosigners: list[str] = []
    compared_with: list[str] = []
    unreachable: list[str] = []
    stage_digests: int = 0
    problems: list[str] = []


class VerificationReport(_Out):
    ok: bool
    checked_entries: int
    parties: dict[str, PartyVerification]


class User(_Out):
    name: str
    role: Role
    created: float
    disabled: bool = False


class UserCreated(_Out):
    """The new user's token: shown once, only its hash is kept."""

    name: str
    role: Role
    token: str


class ErrorBody(BaseModel):
    detail: str
