"""The node's metadata storage: SQLAlchemy 2 tables, alembic migrations, and repositories over them.

Open everything with :meth:`Storage.open` (SQLite ``<workdir>/node.db`` by default,
PostgreSQL by URL).  Repositories return frozen dataclasses (or
:class:`~jointly.node.records.JobRecord`), never live ORM objects; every call is one
short transaction, so one :class:`Storage` serves many threads.
"""

from jointly.node.storage.approvals import Approval, ApprovalsRepo, EventsRepo, JobEvent
from jointly.node.storage.datasets import Dataset, DatasetsRepo, TableInfo, inspect_table
from jointly.node.storage.db import Database
from jointly.node.storage.facade import Storage
from jointly.node.storage.jobs import SqlJobStore
from jointly.node.storage.ledger import SqlLedgerStore
from jointly.node.storage.users import ROLES, User, UsersRepo, hash_token

__all__ = [
    "ROLES",
    "Approval",
    "ApprovalsRepo",
    "Database",
    "Dataset",
    "DatasetsRepo",
    "EventsRepo",
    "JobEvent",
    "SqlJobStore",
    "SqlLedgerStore",
    "Storage",
    "TableInfo",
    "User",
    "UsersRepo",
    "hash_token",
    "inspect_table",
]
