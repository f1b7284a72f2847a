"""The node's tables, as SQLAlchemy 2 typed ORM classes.

These classes are private to :mod:`jointly.node.storage`: repositories turn rows
into frozen dataclasses (or :class:`~jointly.node.records.JobRecord`) before they
leave the package, so no caller holds a live ORM object across threads.  The
schema itself is created and changed only by the alembic migrations in
``migrations/versions``; a unit test checks that these classes and the
migrations agree.

Times are POSIX seconds (``float``), as everywhere else in the node.  Nothing here
is secret except ``users.token_hash``, which is a SHA-256 of a random token (the
token itself is never stored).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Role = Literal["admin", "analyst", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "analyst", "auditor")
DECISIONS = ("approve", "reject")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        bytes: LargeBinary,
        float: Double,
    }


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[float]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class DatasetRow(Base):
    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    id_column: Mapped[str] = mapped_column(String(256))
    columns: Mapped[list[Any]]
    rows: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[float]
    created_by: Mapped[str] = mapped_column(String(64))


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created"),)

    job_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(64), default="")
    initiator: Mapped[str] = mapped_column(String(128))
    party: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(128), default="")
    progress: Mapped[dict[str, Any]]
    error_party: Mapped[str | None] = mapped_column(String(128))
    error_stage: Mapped[str | None] = mapped_column(String(128))
    error_reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    output_dir: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[float] = mapped_column(index=True)
    started: Mapped[float | None]
    finished: Mapped[float | None]
    expires_at: Mapped[float | None]
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)


class ApprovalRow(Base):
    __tablename__ = "approvals"
    __table_args__ = (CheckConstraint(_in("decision", DECISIONS), name="decision"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True)
    party: Mapped[str] = mapped_column(String(128), primary_key=True)
    decision: Mapped[str] = mapped_column(String(8))
    user_name: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[bytes]
    created: Mapped[float]


class JobEventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(96))  # "" for events of the node itself, so no foreign key
    time: Mapped[float]
    kind: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(128), default="")
    message: Mapped[str] = mapped_column(Text, default="")


class LedgerEntryRow(Base):
    """One encoded signed entry of ``party``'s log; a plain table so tamper tests can edit it with SQL."""

    __tablename__ = "ledger_entries"

    party: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[bytes]


class LedgerHeadRow(Base):
    __tablename__ = "ledger_heads"
    __table_args__ = (Index("ix_ledger_heads_party_id", "party", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    party: Mapped[str] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[bytes]


class LedgerCosignatureRow(Base):
    __tablename__ = "ledger_cosignatures"

    party: Mapped[str] = mapped_column(String(128), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    signer: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[bytes]
