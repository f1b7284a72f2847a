"""Job records of one node in its database; each job's output files stay on disk under ``jobs_root/<job_id>/``.

:class:`SqlJobStore` keeps the API of the older JSON-file ``RecordStore`` (``root``,
``job_dir``, ``add``, ``get``, ``all``, ``update``, ``set_progress``, ``set_stage``,
``view``) and adds ``list``/``count`` for the REST API and ``fail_interrupted`` for
node start.  Running jobs report progress many times a second: ``set_progress``
and ``set_stage`` only touch memory, :meth:`get` and :meth:`view` overlay those live
values on the stored row, and the next :meth:`update` (or :meth:`flush`) writes
them.  A crash loses at most that live progress; the job is then failed by
:meth:`fail_interrupted` on the next start anyway.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from jointly.errors import ConfigError, NotFound
from jointly.node.records import JobError, JobRecord
from jointly.node.storage.db import Database
from jointly.node.storage.models import JobRow
from jointly.runtime.states import ACCEPTED, APPROVED, FAILED, RUNNING

__all__ = ["INTERRUPTIBLE", "SqlJobStore"]

INTERRUPTIBLE = (APPROVED, RUNNING, ACCEPTED)  # states a job cannot survive a node restart in
_PLAIN = frozenset(f.name for f in fields(JobRecord)) - {"job_id", "error"}


@dataclass
class _Live:
    stage: str | None = None
    progress: dict[str, list[int]] = field(default_factory=dict)


def _record(row: JobRow) -> JobRecord:
    error = None
    if row.error_party is not None:
        error = JobError(row.error_party, row.error_stage or "", row.error_reason or "")
    return JobRecord(
        job_id=row.job_id,
        spec=row.spec,
        initiator=row.initiator,
        party=row.party,
        state=row.state,
        stage=row.stage,
        progress={str(k): [int(x) for x in v] for k, v in row.progress.items()},
        error=error,
        result=row.result,
        output_dir=row.output_dir,
        created=row.created,
        finished=row.finished,
        bytes_sent=row.bytes_sent,
        bytes_received=row.bytes_received,
        name=row.name,
        kind=row.kind,
        started=row.started,
        expires_at=row.expires_at,
    )


def _columns(changes: dict[str, Any]) -> dict[str, Any]:
    """JobRecord field changes -> column values (``error`` spans three columns)."""
    values: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "error":
            if value is not None and not isinstance(value, JobError):
                raise ConfigError(f"a job's error must be a JobError, not {type(value).__name__}")
            values["error_party"] = None if value is None else value.party
            values["error_stage"] = None if value is None else value.stage
            values["error_reason"] = None if value is None else value.reason
        elif key in _PLAIN:
            values[key] = value
        else:
            raise ConfigError(f"job records have no field {key!r}")
    return values


class SqlJobStore:
    """Thread-safe job records of one node (a drop-in for ``jointly.node.records.RecordStore``)."""

    def __init__(self, db: Database, jobs_root: Path) -> None:
        self._db = db
        self.root = jobs_root
        self.root.mkdir(parents=True, exist_ok=True)
        self._live: dict[str, _Live] = {}
        self._live_lock = threading.Lock()
        self._write_lock = threading.RLock()  # orders this process's updates of a job with its live values

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    # -- writes ------------------------------------------------------------------------
    def add(self, record: JobRecord) -> bool:
        """Store a new job and create its directory; False if the job id is already known.

        ``name`` and ``kind`` default to the spec's ``name`` and ``kind``.
        """
        directory = self.job_dir(record.job_id)
        if directory.exists():
            return False
        values = _columns({k: getattr(record, k) for k in (*_PLAIN, "error")})
        spec = record.spec
        values["name"] = record.name or str(spec.get("name") or "")
        values["kind"] = record.kind or str(spec.get("kind") or "")
        created_dir = False
        try:
            with self._db.write() as s:
                if s.get(JobRow, record.job_id) is not None:
                    return False
                s.add(JobRow(job_id=record.job_id, **values))
                s.flush()
                directory.mkdir(parents=True)
                created_dir = True
        except IntegrityError:
            self._remove_empty(directory, created_dir)
            return False
        except FileExistsError:
            return False
        except BaseException:
            self._remove_empty(directory, created_dir)
            raise
        return True

    @staticmethod
    def _remove_empty(directory: Path, created: bool) -> None:
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()

    def update(self, job_id: str, **changes: Any) -> None:
        """Change fields of a job (``JobRecord`` field names); writes pending live progress too.

        ``NotFound`` for an unknown job, ``ConfigError`` for an unknown field.
        """
        values = _columns(changes)
        with self._write_lock:
            with self._live_lock:
                live = self._live.pop(job_id, None)
            try:
                self._write(job_id, values, live)
            except BaseException:
                if live is not None:
                    self._restore(job_id, live)
                raise

    def flush(self) -> None:
        """Write every job's pending live progress and stage (call now and then, and before closing)."""
        with self._write_lock:
            with self._live_lock:
                pending, self._live = self._live, {}
            for job_id, live in pending.items():
                try:
                    self._write(job_id, {}, live)
                except NotFound:
                    continue  # progress reported for a job never stored: nothing to keep

    def _write(self, job_id: str, values: dict[str, Any], live: _Live | None) -> None:
        with self._db.write() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"unknown job {job_id!r}")
            if live is not None:
                if live.stage is not None:
                    row.stage = live.stage
                if live.progress:
                    row.progress = {**row.progress, **live.progress}
            for key, value in values.items():
                setattr(row, key, value)

    def _restore(self, job_id: str, live: _Live) -> None:
        with self._live_lock:
            newer = self._live.get(job_id)
            if newer is None:
                self._live[job_id] = live
                return
            if newer.stage is None:
                newer.stage = live.stage
            newer.progress = {**live.progress, **newer.progress}

    def set_progress(self, job_id: str, task: str, done: int, total: int) -> None:
        """Record progress of one task of a running job (memory only until the next update)."""
        with self._live_lock:
            self._live.setdefault(job_id, _Live()).progress[task] = [int(done), int(total)]

    def set_stage(self, job_id: str, stage: str) -> None:
        """Record the stage a running job is in (memory only until the next update)."""
        with self._live_lock:
            self._live.setdefault(job_id, _Live()).stage = stage

    def fail_interrupted(self, reason: str) -> list[str]:
        """On node start: fail every job a previous run left approved or running; return their ids.

        Each becomes ``failed`` with error (this node's party, the stage it was in,
        ``reason``); its stage is kept.  Call before starting any job.
        """
        now = time.time()
        with self._db.write() as s:
            rows = list(s.scalars(select(JobRow).where(JobRow.state.in_(INTERRUPTIBLE)).order_by(JobRow.created)))
            for row in rows:
                row.state = FAILED
                row.error_party = row.party
                row.error_stage = row.stage
                row.error_reason = reason
                row.finished = now
            ids = [row.job_id for row in rows]
        with self._live_lock:
            for job_id in ids:
                self._live.pop(job_id, None)
        return ids

    # -- reads --------------------------------------------------------------------------
    def _overlay(self, record: JobRecord) -> JobRecord:
        with self._live_lock:
            live = self._live.get(record.job_id)
            if live is not None:
                if live.stage is not None:
                    record.stage = live.stage
                if live.progress:
                    record.progress = {**record.progress, **{k: list(v) for k, v in live.progress.items()}}
        return record

    def get(self, job_id: str) -> JobRecord | None:
        """A snapshot of the job (with live progress), or ``None``; changing it changes nothing stored."""
        with self._db.read() as s:
            row = s.get(JobRow, job_id)
            record = None if row is None else _record(row)
        return None if record is None else self._overlay(record)

    def all(self) -> list[JobRecord]:
        """Every job, oldest first."""
        with self._db.read() as s:
            records = [_record(r) for r in s.scalars(select(JobRow).order_by(JobRow.created, JobRow.job_id))]
        return [self._overlay(r) for r in records]

    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        """Jobs newest first, optionally only those in ``state``."""
        if limit < 0 or offset < 0:
            raise ConfigError("limit and offset must not be negative")
        query = select(JobRow).order_by(JobRow.created.desc(), JobRow.job_id.desc()).limit(limit).offset(offset)
        if state is not None:
            query = query.where(JobRow.state == state)
        with self._db.read() as s:
            records = [_record(r) for r in s.scalars(query)]
        return [self._overlay(r) for r in records]

    def count(self, *, state: str | None = None) -> int:
        query = select(func.count()).select_from(JobRow)
        if state is not None:
            query = query.where(JobRow.state == state)
        with self._db.read() as s:
            return int(s.scalar(query) or 0)

    def view(self, job_id: str, *, include_result: bool) -> dict[str, Any] | None:
        record = self.get(job_id)
        return None if record is None else record.public_view(include_result=include_result)

    def states(self) -> dict[str, int]:
        """How many jobs are in each state."""
        with self._db.read() as s:
            rows = s.execute(select(JobRow.state, func.count()).group_by(JobRow.state)).all()
        return {str(state): int(n) for state, n in rows}
