"""Job and approval routes of the node's REST API over the fake services."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.node.api.conftest import ADMIN, ANALYST, AUDITOR
from tests.unit.node.api.fake_services import FakeServices, partner_job, psi_spec

SUMMARY_KEYS = {"job_id", "name", "kind", "initiator", "state", "stage", "created", "finished", "parties"}
JOB_KEYS = SUMMARY_KEYS | {
    "spec",
    "usage",
    "approvals",
    "awaiting",
    "progress",
    "error",
    "events",
    "bytes_sent",
    "bytes_received",
    "result",
    "started",
    "expires_at",
}


def test_propose_then_show(client: TestClient, services: FakeServices) -> None:
    r = client.post("/api/jobs", json={"spec": psi_spec()}, headers=ANALYST)
    assert r.status_code == 200, r.text
    job = r.json()
    assert set(job) == JOB_KEYS
    assert job["state"] == "pending"
    assert job["initiator"] == "bank"
    assert job["parties"] == ["bank", "telco"]
    assert job["awaiting"] == ["telco"]
    assert job["approvals"][0] == {
        "party": "bank",
        "decision": "approve",
        "user": "analyst",
        "reason": "proposed here",
        "created": 1_700_000_001.0,
    }
    assert job["usage"]["datasets"][0]["columns"] == ["customer_id"]
    assert job["usage"]["privacy"]["protocol"] == "ECDH-PSI"
    assert client.get(f"/api/jobs/{job['job_id']}", headers=AUDITOR).json() == job


def test_propose_with_a_registered_dataset(client: TestClient, services: FakeServices) -> None:
    body = {"name": "cust", "path": "/data/bank.csv", "id_column": "customer_id"}
    assert client.post("/api/datasets", json=body, headers=ANALYST).status_code == 200
    r = client.post("/api/jobs", json={"spec": psi_spec(dataset="cust")}, headers=ANALYST)
    assert r.status_code == 200
    r = client.post("/api/jobs", json={"spec": psi_spec(dataset="nope")}, headers=ANALYST)
    assert r.status_code == 404
    assert "no dataset 'nope'" in r.json()["detail"]


@pytest.mark.parametrize(
    "spec",
    [
        {**psi_spec(), "kind": "nonsense"},
        {**psi_spec(), "parties": {"bank": {"data": "b.csv"}}},
        {**psi_spec(), "surprise": True},
        {"name": "x"},
    ],
)
def test_malformed_spec_is_400(client: TestClient, services: FakeServices, spec: dict[str, object]) -> None:
    r = client.post("/api/jobs", json={"spec": spec}, headers=ANALYST)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]
    assert services.jobs.jobs == {}


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"spec": "psi"}',
        b'{"spec": [1, 2]}',
        b"{}",
        b'{"spec": {}, "job_id": "mine"}',
        b"",
    ],
)
def test_malformed_body_is_422(client: TestClient, services: FakeServices, body: bytes) -> None:
    headers = {**ANALYST, "Content-Type": "application/json"}
    r = client.post("/api/jobs", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("invalid request")
    assert services.jobs.jobs == {}


def test_list_filters_and_paginates(client: TestClient, services: FakeServices) -> None:
    ids = [partner_job(services, f"job{i}") for i in range(5)]
    services.jobs.jobs[ids[0]]["state"] = "succeeded"
    r = client.get("/api/jobs", headers=AUDITOR)
    body = r.json()
    assert body["total"] == 5
    assert [j["job_id"] for j in body["jobs"]] == ids[::-1]
    assert set(body["jobs"][0]) == SUMMARY_KEYS
    page = client.get("/api/jobs", params={"limit": 2, "offset": 1}, headers=AUDITOR).json()
    assert [j["job_id"] for j in page["jobs"]] == ids[::-1][1:3]
    done = client.get("/api/jobs", params={"state": "succeeded"}, headers=AUDITOR).json()
    assert done == {"total": 1, "jobs": [client.get("/api/jobs", headers=AUDITOR).json()["jobs"][-1]]}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"state": "DROP TABLE"}])
def test_bad_list_parameters_are_422(client: TestClient, params: dict[str, object]) -> None:
    r = client.get("/api/jobs", params=params, headers=AUDITOR)
    assert r.status_code == 422
    assert "query." in r.json()["detail"]


def test_approvals_flow(client: TestClient, services: FakeServices) -> None:
    job_id = partner_job(services)
    pending = client.get("/api/approvals", headers=AUDITOR).json()
    assert [j["job_id"] for j in pending] == [job_id]
    assert set(pending[0]) == JOB_KEYS
    r = client.post(f"/api/jobs/{job_id}/approve", json={"reason": "looks fine"}, headers=ANALYST)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["state"] == "approved"
    assert job["approvals"][-1]["reason"] == "looks fine"
    assert job["approvals"][-1]["user"] == "analyst"
    assert client.get("/api/approvals", headers=AUDITOR).json() == []
    r = client.post(f"/api/jobs/{job_id}/approve", headers=ANALYST)
    assert r.status_code == 409


def test_approve_needs_no_body(client: TestClient, services: FakeServices) -> None:
    job_id = partner_job(services)
    r = client.post(f"/api/jobs/{job_id}/approve", headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["approvals"][-1]["reason"] == ""


def test_reject_needs_a_reason(client: TestClient, services: FakeServices) -> None:
    job_id = partner_job(services)
    for body in (None, {}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 2001}):
        r = client.post(f"/api/jobs/{job_id}/reject", json=body, headers=ANALYST)
        assert r.status_code == 422, body
    r = client.post(f"/api/jobs/{job_id}/reject", json={"reason": "uses income"}, headers=ANALYST)
    assert r.status_code == 200
    assert r.json()["state"] == "rejected"
    assert r.json()["approvals"][-1] == {
        "party": "bank",
        "decision": "reject",
        "user": "analyst",
        "reason": "uses income",
        "created": 1_700_000_001.0,
    }


def test_cancel_logs_results(client: TestClient, services: FakeServices) -> None:
    job_id = partner_job(services)
    r = client.post(f"/api/jobs/{job_id}/cancel", headers=ANALYST)
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=ANALYST).status_code == 409
    logs = client.get(f"/api/jobs/{job_id}/logs", headers=AUDITOR).json()
    assert [e["kind"] for e in logs] == ["proposed", "cancelled"]
    assert set(logs[0]) == {"time", "kind", "stage", "message"}
    r = client.get(f"/api/jobs/{job_id}/results", headers=AUDITOR)
    assert r.status_code == 404
    services.jobs.jobs[job_id]["result"] = {"intersection_size": 3}
    r = client.get(f"/api/jobs/{job_id}/results", headers=AUDITOR)
    assert r.json() == {"result": {"intersection_size": 3}, "metrics": {"auc": 0.9}}


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", "/cancel"), ("GET", "/logs"), ("GET", "/results"), ("POST", "/approve")],
)
def test_unknown_job_is_404(client: TestClient, method: str, suffix: str) -> None:
    r = client.request(method, f"/api/jobs/no-such-job{suffix}", headers=ADMIN)
    assert r.status_code == 404
    assert r.json() == {"detail": "no job 'no-such-job' on node 'bank'"}


def test_malformed_job_id_is_422(client: TestClient) -> None:
    assert client.get("/api/jobs/..%2Fsecret", headers=ADMIN).status_code in (404, 422)
    assert client.get("/api/jobs/" + "x" * 97, headers=ADMIN).status_code == 422
