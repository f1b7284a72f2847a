"""Each party's signed decision on each job, and each job's event timeline, as stored on one node.

Approvals are kept exactly as received (the signature bytes included) so anyone
can re-check later that party X approved exactly this job; verifying them is
``jointly.node.approvals``' business, not the store's.  A party decides a job
once: the same decision again is a no-op, a different one is a :class:`Conflict`.

Events are the human-readable timeline of a job (and, with job id ``""``, of the
node itself: datasets registered, users created ...); the signed record of the
same facts is the audit ledger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jointly.errors import ConfigError, Conflict, NotFound
from jointly.node.storage.db import Database
from jointly.node.storage.models import DECISIONS, ApprovalRow, JobEventRow, JobRow

__all__ = ["Approval", "ApprovalsRepo", "EventsRepo", "JobEvent"]


@dataclass(frozen=True)
class Approval:
    """One party's decision on one job, as signed by that party."""

    job_id: str
    party: str
    decision: str  # "approve" | "reject"
    user: str
    reason: str
    signature: bytes
    created: float

    def to_dict(self) -> dict[str, object]:
        """The public part (no signature bytes) for the REST API."""
        return {
            "party": self.party,
            "decision": self.decision,
            "user": self.user,
            "reason": self.reason,
            "created": self.created,
        }


def _approval(row: ApprovalRow) -> Approval:
    return Approval(
        job_id=row.job_id,
        party=row.party,
        decision=row.decision,
        user=row.user_name,
        reason=row.reason,
        signature=bytes(row.signature),
        created=row.created,
    )


class ApprovalsRepo:
    """Decisions per (job, party)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(
        self,
        job_id: str,
        party: str,
        decision: str,
        user: str,
        reason: str,
        signature: bytes,
        created: float | None = None,
    ) -> None:
        """Store ``party``'s decision on ``job_id``.

        Idempotent for the same decision (the first one stored is kept); ``Conflict``
        if ``party`` already made the other decision; ``NotFound`` for an unknown job;
        ``ConfigError`` for a decision other than approve/reject.
        """
        if decision not in DECISIONS:
            raise ConfigError(f"unknown decision {decision!r}; expected one of {', '.join(DECISIONS)}")
        row = ApprovalRow(
            job_id=job_id,
            party=party,
            decision=decision,
            user_name=user,
            reason=reason,
            signature=bytes(signature),
            created=time.time() if created is None else float(created),
        )
        for _attempt in range(2):
            try:
                with self._db.write() as s:
                    held = s.get(ApprovalRow, (job_id, party))
                    if held is None:
                        if s.get(JobRow, job_id) is None:
                            raise NotFound(f"unknown job {job_id!r}")
                        s.add(row)
                        return
                    if held.decision != decision:
                        raise Conflict(f"{party!r} already decided job {job_id}: {held.decision}")
                    return
            except IntegrityError:
                continue  # another writer stored (job, party) first (possible on PostgreSQL): look again
        raise Conflict(f"could not store {party!r}'s decision on job {job_id}")

    def get(self, job_id: str, party: str) -> Approval | None:
        with self._db.read() as s:
            row = s.get(ApprovalRow, (job_id, party))
            return None if row is None else _approval(row)

    def for_job(self, job_id: str) -> list[Approval]:
        """Every decision on the job, oldest first ([] for an unknown job)."""
        query = select(ApprovalRow).where(ApprovalRow.job_id == job_id).order_by(ApprovalRow.created, ApprovalRow.party)
        with self._db.read() as s:
            return [_approval(r) for r in s.scalars(query)]


@dataclass(frozen=True)
class JobEvent:
    """One line of a job's timeline."""

    id: int
    job_id: str
    time: float
    kind: str
    stage: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"time": self.time, "kind": self.kind, "stage": self.stage, "message": self.message}


class EventsRepo:
    """Append-only job timelines."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, job_id: str, kind: str, stage: str = "", message: str = "", *, time: float | None = None) -> None:
        """Append an event to ``job_id``'s timeline (``""``: an event of the node itself)."""
        when = _now() if time is None else float(time)
        with self._db.write() as s:
            s.add(JobEventRow(job_id=job_id, time=when, kind=kind, stage=stage, message=message))

    def for_job(self, job_id: str, *, limit: int | None = None) -> list[JobEvent]:
        """The job's events in the order they were added ([] for an unknown job); the first ``limit`` only."""
        query = select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id).limit(limit)
        with self._db.read() as s:
            return [
                JobEvent(id=r.id, job_id=r.job_id, time=r.time, kind=r.kind, stage=r.stage, message=r.message)
                for r in s.scalars(query)
            ]


def _now() -> float:
    return time.time()
