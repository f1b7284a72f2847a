"""Models, ledger and users routes of the node's REST API over the fake services."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.node.api.conftest import ADMIN, AUDITOR
from tests.unit.node.api.fake_services import FakeServices


def test_models(client: TestClient) -> None:
    models = client.get("/api/models", headers=AUDITOR).json()
    assert models == [
        {"name": "risk", "version": 1, "job_id": "risk-0001", "kind": "secureboost", "role": "guest", "created": 1.7e9}
    ]
    for ref in ("risk", "risk@v1", "risk-0001"):
        model = client.get(f"/api/models/{ref}", headers=AUDITOR).json()
        assert model["features"] == ["income"]
        assert model["parties"] == ["bank", "telco"]
    r = client.get("/api/models/nope", headers=AUDITOR)
    assert r.status_code == 404
    assert r.json() == {"detail": "no model 'nope' here"}


def test_ledger_entries(client: TestClient) -> None:
    page = client.get("/api/ledger", headers=AUDITOR).json()
    assert page["party"] == "bank"
    assert page["size"] == 5
    assert [e["seq"] for e in page["entries"]] == [0, 1, 2, 3, 4]
    assert set(page["entries"][0]) == {"seq", "party", "time", "job_id", "event", "stage", "data", "signature_ok"}
    telco = client.get("/api/ledger", params={"party": "telco", "job_id": "psi-0001"}, headers=AUDITOR).json()
    assert [e["seq"] for e in telco["entries"]] == [1, 3]
    assert all(e["party"] == "telco" for e in telco["entries"])
    page = client.get("/api/ledger", params={"offset": 3, "limit": 1}, headers=AUDITOR).json()
    assert [e["seq"] for e in page["entries"]] == [3]
    assert client.get("/api/ledger", params={"party": "mars"}, headers=AUDITOR).status_code == 404


@pytest.mark.parametrize("params", [{"party": "Not A Party"}, {"limit": 1000}, {"job_id": "../x"}])
def test_ledger_bad_parameters(client: TestClient, params: dict[str, object]) -> None:
    assert client.get("/api/ledger", params=params, headers=AUDITOR).status_code == 422


def test_ledger_head_and_verify(client: TestClient, services: FakeServices) -> None:
    head = client.get("/api/ledger/head", headers=AUDITOR).json()
    assert head == {"party": "bank", "size": 5, "root": "ab" * 32, "time": 1_700_000_005.0, "cosigners": ["telco"]}
    report = client.post("/api/ledger/verify", headers=AUDITOR).json()
    assert report["ok"] is True
    assert report["checked_entries"] == 10
    telco = report["parties"]["telco"]
    assert {k: telco[k] for k in ("ok", "size", "problems")} == {"ok": True, "size": 5, "problems": []}
    services.ledger.problems["telco"] = ["entry 3: bad signature"]
    report = client.post("/api/ledger/verify", headers=AUDITOR).json()
    assert report["ok"] is False
    assert report["parties"]["telco"]["problems"] == ["entry 3: bad signature"]


def test_users(client: TestClient, services: FakeServices) -> None:
    users = client.get("/api/users", headers=ADMIN).json()
    assert [u["name"] for u in users] == ["admin", "analyst", "auditor"]
    assert set(users[0]) == {"name", "role", "created", "disabled"}
    assert "token_hash" not in str(users)
    r = client.post("/api/users", json={"name": "carol", "role": "auditor"}, headers=ADMIN)
    assert r.status_code == 200
    assert r.json() == {"name": "carol", "role": "auditor", "token": "token-of-carol"}
    r = client.get("/api/me", headers={"Authorization": "Bearer token-of-carol"})
    assert r.json() == {"name": "carol", "role": "auditor"}
    assert client.post("/api/users", json={"name": "carol", "role": "auditor"}, headers=ADMIN).status_code == 409


@pytest.mark.parametrize(
    "body", [{"name": "carol", "role": "root"}, {"name": "", "role": "admin"}, {"name": "a b", "role": "admin"}]
)
def test_bad_user_input_is_422(client: TestClient, body: dict[str, str]) -> None:
    assert client.post("/api/users", json=body, headers=ADMIN).status_code == 422
