"""One object holding a node's database and every repository over it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jointly.node.storage.approvals import ApprovalsRepo, EventsRepo
from jointly.node.storage.datasets import DatasetsRepo
from jointly.node.storage.db import Database
from jointly.node.storage.jobs import SqlJobStore
from jointly.node.storage.ledger import SqlLedgerStore
from jointly.node.storage.users import UsersRepo

__all__ = ["Storage"]


@dataclass(frozen=True)
class Storage:
    """A node's metadata storage: users, datasets, jobs (files under ``jobs.root``), approvals, events, ledger."""

    db: Database
    users: UsersRepo
    datasets: DatasetsRepo
    jobs: SqlJobStore
    approvals: ApprovalsRepo
    events: EventsRepo
    ledger: SqlLedgerStore

    @classmethod
    def open(cls, workdir: Path, url: str | None = None) -> Storage:
        """Open (creating or migrating) the node database; SQLite ``<workdir>/node.db`` unless ``url`` is given.

        Job output files live under ``<workdir>/jobs/<job_id>/`` whatever the database.
        """
        db = Database.for_workdir(workdir) if url is None else Database(url)
        try:
            return cls.over(db, jobs_root=workdir / "jobs")
        except BaseException:
            db.close()
            raise

    @classmethod
    def over(cls, db: Database, *, jobs_root: Path) -> Storage:
        """Repositories over an already open database."""
        return cls(
            db=db,
            users=UsersRepo(db),
            datasets=DatasetsRepo(db),
            jobs=SqlJobStore(db, jobs_root),
            approvals=ApprovalsRepo(db),
            events=EventsRepo(db),
            ledger=SqlLedgerStore(db),
        )

    def close(self) -> None:
        """Write pending job progress, then close the database's connections."""
        try:
            self.jobs.flush()
        finally:
            self.db.close()
