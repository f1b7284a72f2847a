"""Database: migrations shipped in the package bring any database to head; SQLite is set up for many threads."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from jointly.errors import ConfigError
from jointly.node.storage import Database, Storage
from jointly.node.storage.db import MIGRATIONS
from jointly.node.storage.models import Base

TABLES = {
    "users",
    "datasets",
    "jobs",
    "approvals",
    "job_events",
    "ledger_entries",
    "ledger_heads",
    "ledger_cosignatures",
}


def tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_fresh_database_is_at_head_with_every_table(tmp_path: Path) -> None:
    db = Database.for_workdir(tmp_path)
    try:
        assert (tmp_path / "node.db").is_file()
        assert (tmp_path / "node.db").stat().st_mode & 0o077 == 0
        assert db.current_revision() == db.head_revision() == "0001"
        assert tables(db) == TABLES
    finally:
        db.close()


def test_orm_classes_match_the_migrations(tmp_path: Path) -> None:
    db = Database.for_workdir(tmp_path)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.close()


def test_reopening_keeps_data_and_revision(tmp_path: Path) -> None:
    st = Storage.open(tmp_path)
    st.users.create("alice", "analyst")
    st.close()
    st = Storage.open(tmp_path)
    try:
        assert [u.name for u in st.users.list()] == ["alice"]
        assert st.db.current_revision() == st.db.head_revision()
    finally:
        st.close()


def test_downgrade_to_base_then_upgrade_to_head(tmp_path: Path) -> None:
    db = Database.for_workdir(tmp_path)
    try:
        db.downgrade("base")
        assert db.current_revision() is None
        assert tables(db) == set()
        db.upgrade()
        assert db.current_revision() == db.head_revision()
        assert tables(db) == TABLES
    finally:
        db.close()


def test_database_from_a_newer_jointly_is_refused(tmp_path: Path) -> None:
    db = Database.for_workdir(tmp_path)
    with db.write() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.close()
    with pytest.raises(ConfigError, match=r"revision '9999'.*newer jointly"):
        Database.for_workdir(tmp_path)


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "versions" / "0001_initial.py").is_file()
    assert MIGRATIONS.parent.name == "storage"


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    db = Database.for_workdir(tmp_path, busy_timeout_s=7)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.close()


def test_write_rolls_back_on_error(tmp_path: Path) -> None:
    st = Storage.open(tmp_path)
    try:
        with pytest.raises(RuntimeError), st.db.write() as s:
            s.execute(text("INSERT INTO job_events (job_id, time, kind, stage, message) VALUES ('', 1, 'k', '', '')"))
            raise RuntimeError("boom")
        assert st.events.for_job("") == []
    finally:
        st.close()


def test_bad_urls_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid database URL"):
        Database("not a url")
    with pytest.raises(ConfigError, match="cannot open database"):
        Database("nosuchdialect://x/y")
    with pytest.raises(ConfigError, match="cannot open database"):
        Database(f"sqlite:///{tmp_path}/missing-dir/node.db")


def test_in_memory_database_works_for_single_threaded_use() -> None:
    db = Database("sqlite://")
    try:
        assert tables(db) == TABLES
    finally:
        db.close()


def test_storage_open_with_url_keeps_job_files_in_the_workdir(tmp_path: Path) -> None:
    st = Storage.open(tmp_path / "w", url=f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert st.jobs.root == tmp_path / "w" / "jobs"
        assert (tmp_path / "other.db").is_file()
        assert not (tmp_path / "w" / "node.db").exists()
    finally:
        st.close()
