"""The node's database: one SQLAlchemy engine, short transactions, schema kept at the newest migration.

SQLite (a file in the node's work directory) is the default; PostgreSQL works by
URL (``postgresql+psycopg://...``, with the driver installed).  Code and migrations
use only portable SQL; the SQLite specifics live in the connection hooks below:

* WAL journal, so readers never block the writer and the writer never blocks readers;
* ``busy_timeout``, so a writer waits for another writer instead of failing at once;
* foreign keys on (SQLite leaves them off unless asked);
* write transactions start with ``BEGIN IMMEDIATE``: a transaction that reads and
  then writes can otherwise fail with "database is locked" when another thread
  commits in between, whatever the busy timeout.

Every repository call opens its own session for one short transaction, so one
:class:`Database` may be used from many threads at once.  Opening a database runs
``alembic upgrade head`` from the migrations shipped inside this package; a
database written by a newer jointly (an unknown revision) is refused with a
:class:`~jointly.errors.ConfigError` rather than silently misread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from jointly.errors import ConfigError

__all__ = ["MIGRATIONS", "Database"]

log = logging.getLogger("jointly.node.storage")

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "jointly_write"  # execution option: this transaction will write (SQLite: BEGIN IMMEDIATE)


class Database:
    """An open node database at the newest schema revision.

    ``busy_timeout_s`` bounds how long a SQLite writer waits for another writer.
    ``migrate=False`` skips the upgrade (tests of the migrations themselves use it).
    """

    def __init__(self, url: str | URL, *, busy_timeout_s: float = 30.0, migrate: bool = True) -> None:
        try:
            self.url = make_url(url)
        except ArgumentError as e:
            raise ConfigError(f"invalid database URL: {e}") from None
        if self.url.drivername == "postgresql":  # the driver we ship (psycopg 3), not SQLAlchemy's default psycopg2
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        memory = self.is_sqlite and self.url.database in (None, "", ":memory:")
        if memory:
            # one shared connection: an in-memory database exists only inside its connection.
            # Good for single-threaded tests; use a file for anything concurrent.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as e:
            raise ConfigError(f"cannot open database {self.safe_url}: {e}") from None
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, busy_ms=int(busy_timeout_s * 1000), wal=not memory)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine, expire_on_commit=False, execution_options={_WRITE: True})
        if migrate:
            try:
                self.upgrade()
            except BaseException:
                self.engine.dispose()
                raise

    @classmethod
    def for_workdir(cls, workdir: Path, **kwargs: Any) -> Database:
        """The default database of a node: SQLite file ``<workdir>/node.db``, created readable by its owner only."""
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "node.db"
        if not path.exists():  # SQLite gives its -wal and -shm files the database file's permissions
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        return cls(URL.create("sqlite", database=str(path)), **kwargs)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    # -- sessions --------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; its snapshot ends when the block ends (nothing is committed)."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends, or rolls back if it raises."""
        with self._write() as session, session.begin():
            yield session

    def close(self) -> None:
        """Close every pooled connection (sessions still open keep theirs until they end)."""
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------
    def alembic_config(self, connection: Connection | None = None) -> Config:
        """An alembic configuration for the shipped migrations (no ``alembic.ini`` needed)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        cfg.set_main_option("sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%"))
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg

    def head_revision(self) -> str:
        """The newest schema revision this version of jointly knows."""
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - the package always ships a migration
            raise ConfigError("no database migrations are installed")
        return head

    def current_revision(self) -> str | None:
        """The schema revision the database is at (``None``: no schema yet)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema up to ``revision`` in one transaction; refuse a database from a newer jointly."""
        self._migrate("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Migrate the schema down to ``revision`` (``"base"``: drop every table).  Destroys data."""
        self._migrate("downgrade", revision)

    def _migrate(self, direction: str, revision: str) -> None:
        quiet = logging.getLogger("alembic")
        if quiet.level == logging.NOTSET:  # alembic reports every plugin at INFO; the node logs what matters
            quiet.setLevel(logging.WARNING)
        before = None
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    cfg = self.alembic_config(conn)
                    self._check_known(cfg, conn)
                    before = MigrationContext.configure(conn).get_current_revision()
                    if direction == "upgrade":
                        command.upgrade(cfg, revision)
                    else:
                        command.downgrade(cfg, revision)
        except CommandError as e:
            raise ConfigError(f"cannot migrate database {self.safe_url} to {revision!r}: {e}") from None
        except OperationalError as e:
            raise ConfigError(f"cannot open database {self.safe_url}: {e.orig}") from None
        except SQLAlchemyError as e:
            raise ConfigError(f"cannot migrate database {self.safe_url}: {e}") from None
        after = self.current_revision()
        if after != before:
            log.info("database %s migrated from revision %s to %s", self.safe_url, before, after)

    def _check_known(self, cfg: Config, conn: Connection) -> None:
        script = ScriptDirectory.from_config(cfg)
        for rev in MigrationContext.configure(conn).get_current_heads():
            try:
                known = script.get_revision(rev)
            except CommandError:
                known = None
            if known is None:
                raise ConfigError(
                    f"database {self.safe_url} is at schema revision {rev!r}, which this version of jointly does "
                    f"not know (newest known: {script.get_current_head()!r}); it was written by a newer jointly. "
                    "Upgrade jointly, or point the node at another database."
                )


def _install_sqlite_hooks(engine: Engine, *, busy_ms: int, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module; _on_begin issues BEGIN itself
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")
