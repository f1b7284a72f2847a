from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jointly.node.records import JobRecord
from jointly.node.storage import Storage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    st = Storage.open(tmp_path / "node")
    yield st
    st.close()


def job(job_id: str, *, state: str = "pending", created: float = 1000.0, party: str = "a") -> JobRecord:
    spec = {"name": f"name-{job_id}", "kind": "psi", "parties": {"a": {}, "b": {}}}
    return JobRecord(job_id=job_id, spec=spec, initiator="a", party=party, state=state, created=created)
