"""Storage fixtures: every repository test runs on SQLite and, when a server is given, on PostgreSQL.

Set ``JOINTLY_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://jointly:jointly@127.0.0.1/jointly``,
a role allowed to create databases; ``.ci/run`` starts one) to run them on PostgreSQL too: each
test gets a fresh database, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jointly.node.records import JobRecord
from jointly.node.storage import Storage

POSTGRES_URL = os.environ.get("JOINTLY_TEST_POSTGRES_URL", "")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    if not POSTGRES_URL:
        pytest.skip("JOINTLY_TEST_POSTGRES_URL is not set (no PostgreSQL server to test against)")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"jointly_test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    st = Storage.open(tmp_path / "node", url=url)
    yield st
    st.close()


def job(job_id: str, *, state: str = "pending", created: float = 1000.0, party: str = "a") -> JobRecord:
    spec = {"name": f"name-{job_id}", "kind": "psi", "parties": {"a": {}, "b": {}}}
    return JobRecord(job_id=job_id, spec=spec, initiator="a", party=party, state=state, created=created)
