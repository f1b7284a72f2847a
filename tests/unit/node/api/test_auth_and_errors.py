"""Authentication, roles, error bodies, limits and the OpenAPI docs of the node's REST API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jointly.node.api import create_api
from jointly.node.services.base import Principal
from tests.unit.node.api.conftest import ADMIN, ANALYST, AUDITOR
from tests.unit.node.api.fake_services import FakeServices, partner_job, psi_spec

ADMIN_USER = Principal("admin", "admin")

# every route that needs a token, with a body that would otherwise be valid
AUTHED = [
    ("GET", "/api/me", None),
    ("GET", "/api/datasets", None),
    ("POST", "/api/datasets", {"name": "b", "path": "/data/bank.csv", "id_column": "customer_id"}),
    ("GET", "/api/datasets/b", None),
    ("DELETE", "/api/datasets/b", None),
    ("GET", "/api/jobs", None),
    ("POST", "/api/jobs", {"spec": psi_spec()}),
    ("GET", "/api/jobs/j1", None),
    ("POST", "/api/jobs/j1/cancel", None),
    ("GET", "/api/jobs/j1/logs", None),
    ("GET", "/api/jobs/j1/results", None),
    ("GET", "/api/approvals", None),
    ("POST", "/api/jobs/j1/approve", {"reason": "ok"}),
    ("POST", "/api/jobs/j1/reject", {"reason": "no"}),
    ("GET", "/api/models", None),
    ("GET", "/api/models/risk", None),
    ("GET", "/api/ledger", None),
    ("GET", "/api/ledger/head", None),
    ("POST", "/api/ledger/verify", None),
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"name": "eve", "role": "analyst"}),
]


@pytest.mark.parametrize(("method", "path", "body"), AUTHED)
def test_every_route_but_health_needs_a_token(client: TestClient, method: str, path: str, body: object) -> None:
    r = client.request(method, path, json=body)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in r.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token", "Basic YWRtaW46YWRtaW4=", "Bearer " + "x" * 5000, "admin-token"],
)
def test_unknown_or_malformed_tokens_are_401(client: TestClient, header: str) -> None:
    r = client.get("/api/me", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_disabled_user_is_401(client: TestClient, services: FakeServices) -> None:
    services.users.users["analyst"]["disabled"] = True
    assert client.get("/api/me", headers=ANALYST).status_code == 401
    assert client.get("/api/me", headers=ADMIN).status_code == 200


def test_health_needs_no_token(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"party": "bank", "version": "0.1.0", "jobs_running": 0, "warm": True}
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("headers", "role"), [(ADMIN, "admin"), (ANALYST, "analyst"), (AUDITOR, "auditor")])
def test_me(client: TestClient, headers: dict[str, str], role: str) -> None:
    assert client.get("/api/me", headers=headers).json() == {"name": role, "role": role}


AUDITOR_FORBIDDEN = [
    ("POST", "/api/datasets", {"name": "b", "path": "/data/bank.csv", "id_column": "customer_id"}),
    ("DELETE", "/api/datasets/b", None),
    ("POST", "/api/jobs", {"spec": psi_spec()}),
    ("POST", "/api/jobs/JOB/cancel", None),
    ("POST", "/api/jobs/JOB/approve", {"reason": "fine"}),
    ("POST", "/api/jobs/JOB/reject", {"reason": "no"}),
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"name": "eve", "role": "admin"}),
]


@pytest.mark.parametrize(("method", "path", "body"), AUDITOR_FORBIDDEN)
def test_auditor_changes_nothing(
    client: TestClient, services: FakeServices, method: str, path: str, body: object
) -> None:
    job_id = partner_job(services)
    services.datasets.add(name="b", path="/data/bank.csv", id_column="customer_id", description="", by=ADMIN_USER)
    before = (dict(services.jobs.jobs), dict(services.datasets.items), dict(services.users.users))
    r = client.request(method, path.replace("JOB", job_id), json=body, headers=AUDITOR)
    assert r.status_code == 403, r.text
    assert "auditor" in r.json()["detail"]
    assert (dict(services.jobs.jobs), dict(services.datasets.items), dict(services.users.users)) == before
    assert services.jobs.jobs[job_id]["state"] == "pending"


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", {"name": "eve", "role": "admin"})])
def test_analyst_cannot_manage_users(client: TestClient, services: FakeServices, method: str, body: object) -> None:
    r = client.request(method, "/api/users", json=body, headers=ANALYST)
    assert r.status_code == 403
    assert "eve" not in services.users.users


def test_auditor_may_verify_the_ledger(client: TestClient) -> None:
    assert client.post("/api/ledger/verify", headers=AUDITOR).status_code == 200


def test_unexpected_errors_are_500_without_internals(client: TestClient, services: FakeServices) -> None:
    services.broken = True
    r = client.get("/api/health")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error (see the node's log)"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_a_malformed_service_answer_is_500(client: TestClient, services: FakeServices) -> None:
    services.users.users["auditor"]["role"] = "superuser"
    r = client.get("/api/users", headers=ADMIN)
    assert r.status_code == 500
    assert "malformed answer" in r.json()["detail"]


def test_validation_errors_are_clear_and_do_not_echo_the_input(client: TestClient) -> None:
    r = client.post("/api/users", json={"name": "x y", "role": "root", "password": "hunter2"}, headers=ADMIN)
    assert r.status_code == 422
    body = r.json()
    assert body["detail"].startswith("invalid request: ")
    assert {p["loc"] for p in body["errors"]} == {"body.name", "body.role", "body.password"}
    assert "hunter2" not in r.text


def test_body_size_is_limited(services: FakeServices) -> None:
    client = TestClient(create_api(services, max_body_bytes=1000), raise_server_exceptions=False)
    big = {"spec": {**psi_spec(), "padding": "x" * 2000}}
    r = client.post("/api/jobs", json=big, headers=ANALYST)
    assert r.status_code == 413
    assert "over 1000 bytes" in r.json()["detail"]

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"spec": {"name": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}}'

    r = client.post("/api/jobs", content=chunks(), headers={**ANALYST, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert services.jobs.jobs == {}


def test_default_body_limit_is_one_mebibyte(client: TestClient, services: FakeServices) -> None:
    big = {"spec": {**psi_spec(), "padding": "x" * (1 << 20)}}
    assert client.post("/api/jobs", json=big, headers=ANALYST).status_code == 413
    small = {"spec": {**psi_spec(), "secureboost": {"padding": "x" * 100_000}}}
    assert client.post("/api/jobs", json=small, headers=ANALYST).status_code == 400  # reaches the service


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/health",
        "/api/me",
        "/api/datasets",
        "/api/datasets/{name}",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/logs",
        "/api/jobs/{job_id}/results",
        "/api/approvals",
        "/api/jobs/{job_id}/approve",
        "/api/jobs/{job_id}/reject",
        "/api/models",
        "/api/models/{ref}",
        "/api/ledger",
        "/api/ledger/head",
        "/api/ledger/verify",
        "/api/users",
    ):
        assert path in paths, path
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert "security" not in paths["/api/health"]["get"]
    assert paths["/api/jobs"]["get"]["security"] == [{"HTTPBearer": []}]
    assert spec["components"]["schemas"]["DatasetCreate"]["additionalProperties"] is False
