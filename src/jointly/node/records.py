"""Job records kept by a node: state, stage, progress, error and result of each job it takes part in.

:class:`JobRecord` and :class:`JobError` are the node's value types for jobs.  The node's
database (:class:`jointly.node.storage.SqlJobStore`) stores them; :class:`RecordStore`
is the older store that keeps one JSON file per job under the node's work directory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jointly.data.io import atomic_write_json


@dataclass
class JobError:
    """Which party failed the job, in which stage, and why."""

    party: str
    stage: str
    reason: str


@dataclass
class JobRecord:
    job_id: str
    spec: dict[str, Any]
    initiator: str
    party: str
    state: str = "accepted"  # see jointly.runtime.states: pending -> approved -> running -> succeeded | failed ...
    stage: str = ""
    progress: dict[str, list[int]] = field(default_factory=dict)
    error: JobError | None = None
    result: dict[str, Any] | None = None
    output_dir: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    name: str = ""
    kind: str = ""
    started: float | None = None
    expires_at: float | None = None

    def public_view(self, *, include_result: bool) -> dict[str, Any]:
        """What a job member may see; results only for this node's own party."""
        view = asdict(self)
        if not include_result:
            view["result"] = None
            view["output_dir"] = ""
        return view


class RecordStore:
    """Thread-safe job records of one node, mirrored to ``<workdir>/jobs/<job_id>/job.json``."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._records: dict[str, JobRecord] = {}

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def add(self, record: JobRecord) -> bool:
        """Add a new record; False if the job id is already known."""
        with self._lock:
            if record.job_id in self._records or self.job_dir(record.job_id).exists():
                return False
            self._records[record.job_id] = record
            self.job_dir(record.job_id).mkdir(parents=True)
            self._save(record)
            return True

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def all(self) -> list[JobRecord]:
        with self._lock:
            return list(self._records.values())

    def update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            record = self._records[job_id]
            for key, value in changes.items():
                setattr(record, key, value)
            self._save(record)

    def set_progress(self, job_id: str, task: str, done: int, total: int) -> None:
        with self._lock:
            record = self._records.get(job_id)
            if record is not None:
                record.progress[task] = [int(done), int(total)]

    def set_stage(self, job_id: str, stage: str) -> None:
        with self._lock:
            record = self._records.get(job_id)
            if record is not None:
                record.stage = stage

    def view(self, job_id: str, *, include_result: bool) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(job_id)
            return None if record is None else record.public_view(include_result=include_result)

    def _save(self, record: JobRecord) -> None:
        atomic_write_json(self.job_dir(record.job_id) / "job.json", record.public_view(include_result=True))
