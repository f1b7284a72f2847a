"""Dataset routes of the node's REST API over the fake services."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.node.api.conftest import ANALYST, AUDITOR
from tests.unit.node.api.fake_services import FakeServices

BANK = {"name": "bank-customers", "path": "/data/bank.csv", "id_column": "customer_id", "description": "all of them"}


def test_add_list_show_remove(client: TestClient, services: FakeServices) -> None:
    r = client.post("/api/datasets", json=BANK, headers=ANALYST)
    assert r.status_code == 200, r.text
    ds = r.json()
    assert ds == {
        "name": "bank-customers",
        "path": "/data/bank.csv",
        "format": "csv",
        "id_column": "customer_id",
        "columns": [{"name": "customer_id", "dtype": "string"}, {"name": "income", "dtype": "float64"}],
        "rows": 3,
        "description": "all of them",
        "created": 1_700_000_000.0,
        "created_by": "analyst",
    }
    assert "secret_internal_field" not in r.text
    assert client.get("/api/datasets", headers=AUDITOR).json() == [ds]
    assert client.get("/api/datasets/bank-customers", headers=AUDITOR).json() == ds
    r = client.delete("/api/datasets/bank-customers", headers=ANALYST)
    assert r.status_code == 204
    assert r.content == b""
    assert client.get("/api/datasets", headers=AUDITOR).json() == []
    assert services.datasets.items == {}


def test_unknown_dataset_is_404(client: TestClient) -> None:
    for method in ("GET", "DELETE"):
        r = client.request(method, "/api/datasets/nope", headers=ANALYST)
        assert r.status_code == 404
        assert r.json() == {"detail": "no dataset 'nope' on node 'bank'"}


def test_duplicate_is_409(client: TestClient) -> None:
    assert client.post("/api/datasets", json=BANK, headers=ANALYST).status_code == 200
    r = client.post("/api/datasets", json=BANK, headers=ANALYST)
    assert r.status_code == 409
    assert "already registered" in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"path": "/data/missing.csv"}, 400, "no file"),
        ({"id_column": "nope"}, 400, "no id column 'nope'"),
        ({"path": "/data/notes.txt"}, 422, "not a CSV or Parquet file"),
    ],
)
def test_unusable_files_are_refused(client: TestClient, change: dict[str, str], status: int, fragment: str) -> None:
    r = client.post("/api/datasets", json={**BANK, **change}, headers=ANALYST)
    assert r.status_code == status
    assert fragment in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {**BANK, "name": "bad name"},
        {**BANK, "name": "../etc"},
        {**BANK, "name": ""},
        {**BANK, "name": "x" * 129},
        {**BANK, "extra": 1},
        {"name": "b", "path": "/data/bank.csv"},
        {**BANK, "path": ""},
        {**BANK, "id_column": 7},
        [BANK],
    ],
)
def test_bad_input_is_422(client: TestClient, services: FakeServices, body: object) -> None:
    r = client.post("/api/datasets", json=body, headers=ANALYST)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("invalid request")
    assert services.datasets.items == {}


def test_bad_name_in_path_is_422(client: TestClient) -> None:
    assert client.get("/api/datasets/bad%20name", headers=ANALYST).status_code == 422
