"""The node as a product, across three real node processes: datasets, approvals, ledger, restarts.

Each node runs its REST API; people act through it with their tokens.  Jobs
must wait for every party's approval; a rejection stops them everywhere; the
signed ledgers are replicated and verified across nodes; a node restarted
mid-job marks the job failed with a reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jointly.config.federation import init_federation
from jointly.data.bundled import VERTICAL_ID_COLUMN, VERTICAL_LABEL, demo_vertical_tables
from jointly.runtime.launcher import LocalFederation
from tests.integration.conftest import DEAD_AFTER, HEARTBEAT, write_ids

pytestmark = pytest.mark.integration

PARTIES = ["bank", "telco", "insurer"]


class Api:
    """One node's REST API as one user."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def get(self, path: str, **params: Any) -> Any:
        reply = self.client.get(path, params=params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def post(self, path: str, body: object = None, *, status: int = 200) -> Any:
        reply = self.client.post(path, json=body or {})
        assert reply.status_code == status, reply.text
        return reply.json() if reply.content else None


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFederation, dict[str, Api]]]:
    tmp = tmp_path_factory.mktemp("platform")
    fed = init_federation(PARTIES, tmp / "fed", name="it-platform")
    data = tmp / "data"
    data.mkdir()
    local = LocalFederation(
        fed,
        tmp,
        data_dir=data,
        heartbeat_interval=HEARTBEAT,
        peer_dead_after=DEAD_AFTER,
        workers=1,
        auto_approve=(),  # every job waits for people
    )
    local.start()
    try:
        apis = {p: Api(local.api_url(p), local.admin_token(p)) for p in PARTIES}
        shared = [f"C{i:05d}" for i in range(300)]
        for i, party in enumerate(PARTIES):
            ids = shared + [f"{party}{j}" for j in range(100 * (i + 1))]
            write_ids(data / f"{party}.csv", ids)
            apis[party].post("/api/datasets", {"name": "customers", "path": f"{party}.csv", "id_column": "id"})
        yield local, apis
    finally:
        local.stop()


def _psi_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "psi",
        "parties": {p: {"dataset": "customers"} for p in PARTIES},
        "psi": {"receivers": ["bank"]},
    }


def _wait_state(api: Api, job_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/api/jobs/{job_id}")
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stayed {job['state']} (wanted {states})"
        time.sleep(0.2)


def test_a_job_runs_only_after_the_last_approval(platform: tuple[LocalFederation, dict[str, Api]]) -> None:
    _, apis = platform
    job = apis["bank"].post("/api/jobs", {"spec": _psi_spec("overlap")})
    job_id = job["job_id"]
    assert job["state"] == "pending"
    # every partner shows it pending, with what of its own data it would use
    for party in ("telco", "insurer"):
        pending = apis[party].get("/api/approvals")
        (seen,) = [j for j in pending if j["job_id"] == job_id]
        usage = seen["usage"]
        assert usage["datasets"][0]["name"] == "customers"
        assert usage["datasets"][0]["columns"] == ["id"]
        assert "ECDH-PSI" in usage["privacy"]["protocol"]
    apis["telco"].post(f"/api/jobs/{job_id}/approve", {"reason": "ok for the pilot"})
    time.sleep(1.5)  # give a wrongly eager node time to start
    for party in PARTIES:
        view = apis[party].get(f"/api/jobs/{job_id}")
        assert view["state"] == "pending", (party, view["state"])
        assert not any(e["kind"] == "job_started" for e in view["events"])
    apis["insurer"].post(f"/api/jobs/{job_id}/approve", {})
    for party in PARTIES:
        done = _wait_state(apis[party], job_id, {"succeeded", "failed"})
        assert done["state"] == "succeeded", done["error"]
        assert {a["party"] for a in done["approvals"]} == set(PARTIES)
    result = apis["bank"].get(f"/api/jobs/{job_id}/results")
    assert result["result"]["intersection_size"] == 300


def test_a_rejection_stops_the_job_on_every_node(platform: tuple[LocalFederation, dict[str, Api]]) -> None:
    _, apis = platform
    job_id = apis["bank"].post("/api/jobs", {"spec": _psi_spec("overlap-2")})["job_id"]
    apis["insurer"].post(f"/api/jobs/{job_id}/approve", {})
    apis["telco"].post(f"/api/jobs/{job_id}/reject", {"reason": "not in our data-sharing agreement"})
    for party in PARTIES:
        view = _wait_state(apis[party], job_id, {"rejected"}, timeout=30)
        assert view["error"]["party"] == "telco"
        assert "agreement" in view["error"]["reason"]
        assert not any(e["kind"] == "job_started" for e in view["events"])
    # a decided job cannot be approved any more
    reply = apis["bank"].client.post(f"/api/jobs/{job_id}/approve", json={})
    assert reply.status_code == 409


def test_roles_and_bad_input_get_clear_errors(platform: tuple[LocalFederation, dict[str, Api]]) -> None:
    local, apis = platform
    created = apis["bank"].post("/api/users", {"name": "carol", "role": "auditor"})
    auditor = Api(local.api_url("bank"), created["token"])
    reply = auditor.client.post("/api/jobs", json={"spec": _psi_spec("sneaky")})
    assert reply.status_code == 403
    assert auditor.get("/api/ledger")["size"] > 0  # auditors read the ledger
    wrong = httpx.get(f"{local.api_url('bank')}/api/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    spec = _psi_spec("bad")
    spec["parties"]["bank"] = {"dataset": "no-such-table"}
    reply = apis["bank"].client.post("/api/jobs", json={"spec": spec})
    assert reply.status_code == 404 and "no-such-table" in reply.text
    spec = _psi_spec("bad-partner")
    spec["parties"]["telco"] = {"dataset": "no-such-table"}
    reply = apis["bank"].client.post("/api/jobs", json={"spec": spec})
    assert reply.status_code >= 400 and "no-such-table" in reply.text


def test_ledgers_are_replicated_and_verify_on_every_node(platform: tuple[LocalFederation, dict[str, Api]]) -> None:
    local, apis = platform
    # a job of its own, so the ledgers hold every step of one (whatever ran before in this module)
    job_id = apis["bank"].post("/api/jobs", {"spec": _psi_spec("ledgered")})["job_id"]
    for party in ("telco", "insurer"):
        apis[party].post(f"/api/jobs/{job_id}/approve", {})
    for party in PARTIES:
        assert _wait_state(apis[party], job_id, {"succeeded", "failed"})["state"] == "succeeded"
    deadline = time.monotonic() + 30
    while True:  # until every node holds every party's ledger, this job's stages included
        reports = {p: apis[p].post("/api/ledger/verify") for p in PARTIES}
        held = {p: set(r["parties"]) for p, r in reports.items()}
        compared = [reports[p]["parties"].get(p, {}).get("stage_digests", 0) for p in PARTIES]
        if (all(h >= set(PARTIES) for h in held.values()) and all(compared)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for party, report in reports.items():
        assert report["ok"], (party, report)
        assert set(report["parties"]) >= set(PARTIES), (party, report["parties"].keys())
    entries = apis["bank"].get("/api/ledger", party="bank", limit=500)["entries"]
    events = {e["event"] for e in entries}
    assert {"job_proposed", "job_approved", "job_started", "stage", "job_succeeded"} <= events
    stage = next(e for e in entries if e["event"] == "stage")
    assert any(k.endswith(".sha256") for k in stage["data"])
    # no raw data or local path enters any ledger: ids, file names and data directories never appear
    everything = json.dumps([apis["bank"].get("/api/ledger", party=p, limit=500) for p in PARTIES])
    assert "C00001" not in everything and not any(f"{p}.csv" in everything for p in PARTIES)
    assert str(local.data_dir) not in everything
    # every party's digests of the messages it sent agree with its partners' digests of what they received
    assert all(reports[p]["parties"][p]["stage_digests"] > 0 for p in PARTIES)


def test_a_node_restarted_mid_job_marks_the_job_failed(tmp_path: Path) -> None:
    fed = init_federation(["hospital", "lab"], tmp_path / "fed", name="it-restart")
    tables = demo_vertical_tables(tmp_path / "data")
    local = LocalFederation(
        fed, tmp_path, data_dir=tmp_path / "data", heartbeat_interval=HEARTBEAT, peer_dead_after=DEAD_AFTER, workers=1
    )
    local.start()
    try:
        api = Api(local.api_url("lab"), local.admin_token("lab"))
        spec = {
            "name": "long-training",
            "kind": "secureboost",
            "parties": {
                "hospital": {"data": tables["hospital"].name, "id_column": VERTICAL_ID_COLUMN, "label": VERTICAL_LABEL},
                "lab": {"data": tables["lab"].name, "id_column": VERTICAL_ID_COLUMN},
            },
            "secureboost": {"n_trees": 200, "max_depth": 3, "key_bits": 1024, "allow_unsafe_key_size": True},
        }
        hospital = Api(local.api_url("hospital"), local.admin_token("hospital"))
        job_id = hospital.post("/api/jobs", {"spec": spec})["job_id"]
        deadline = time.monotonic() + 120
        while not api.get(f"/api/jobs/{job_id}")["stage"].startswith("train"):
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        local.kill("lab")
        local.start_party("lab")
        api = Api(local.api_url("lab"), local.admin_token("lab"))
        view = api.get(f"/api/jobs/{job_id}")
        assert view["state"] == "failed"
        assert "restarted" in view["error"]["reason"]
        assert api.get("/api/jobs")["total"] >= 1
        assert api.post("/api/ledger/verify")["ok"]
        hospital_view = _wait_state(hospital, job_id, {"failed"}, timeout=60)
        assert hospital_view["error"]["reason"]
    finally:
        local.stop()


def _sql(db: Path, statement: str, *args: object) -> list[Any]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute(statement, args).fetchall()
        conn.commit()
    return rows


def _replicated(apis: dict[str, Api], owner: str, holder: str) -> bool:
    own = apis[owner].get("/api/ledger/head")
    held = apis[holder].get("/api/ledger", party=owner, limit=1)["size"]
    return bool(held == own["size"] and holder in own["cosigners"])


def test_tampering_with_stored_ledgers_is_detected_here_and_by_partners(tmp_path: Path) -> None:
    fed = init_federation(["bank", "telco"], tmp_path / "fed", name="it-tamper")
    data = tmp_path / "data"
    data.mkdir()
    for party in ("bank", "telco"):
        write_ids(data / f"{party}.csv", [f"C{i}" for i in range(50)] + [f"{party}{i}" for i in range(20)])
    local = LocalFederation(
        fed, tmp_path, data_dir=data, heartbeat_interval=HEARTBEAT, peer_dead_after=DEAD_AFTER, workers=1
    )
    local.start()
    try:
        apis = {p: Api(local.api_url(p), local.admin_token(p)) for p in ("bank", "telco")}
        spec = {"name": "t", "kind": "psi", "parties": {p: {"data": f"{p}.csv"} for p in ("bank", "telco")}}
        job_id = apis["bank"].post("/api/jobs", {"spec": spec})["job_id"]
        _wait_state(apis["telco"], job_id, {"succeeded"})
        _wait_state(apis["bank"], job_id, {"succeeded"})
        deadline = time.monotonic() + 30
        while not (_replicated(apis, "bank", "telco") and _replicated(apis, "telco", "bank")):
            assert time.monotonic() < deadline, "ledgers were not replicated"
            time.sleep(0.3)
        assert all(apis[p].post("/api/ledger/verify")["ok"] for p in ("bank", "telco"))

        # bank alters one of its own entries (a changed reason, re-encoded) while its node is down
        local.kill("bank")
        bank_db = local.workdir("bank") / "node.db"
        (raw,) = _sql(bank_db, "SELECT data FROM ledger_entries WHERE party='bank' AND seq=2")[0]
        forged = bytes(raw).replace(b'"event":"job_', b'"event":"JOB_', 1)
        assert forged != bytes(raw)
        _sql(bank_db, "UPDATE ledger_entries SET data=? WHERE party='bank' AND seq=2", forged)
        # telco's replica of bank's log gets two entries swapped, and telco's own log loses one
        local.kill("telco")
        telco_db = local.workdir("telco") / "node.db"
        rows = dict(_sql(telco_db, "SELECT seq, data FROM ledger_entries WHERE party='bank' AND seq IN (3, 4)"))
        _sql(telco_db, "UPDATE ledger_entries SET data=? WHERE party='bank' AND seq=3", rows[4])
        _sql(telco_db, "UPDATE ledger_entries SET data=? WHERE party='bank' AND seq=4", rows[3])
        _sql(telco_db, "DELETE FROM ledger_entries WHERE party='telco' AND seq=1")
        for party in ("bank", "telco"):
            local.start_party(party)
        apis = {p: Api(local.api_url(p), local.admin_token(p)) for p in ("bank", "telco")}

        bank_report = apis["bank"].post("/api/ledger/verify")
        assert not bank_report["ok"]
        bank_log = bank_report["parties"]["bank"]
        assert any(p.startswith("bad_signature at 2") for p in bank_log["problems"]), bank_log["problems"]
        assert "telco" in bank_log["compared_with"]
        # the partner's (tampered) replica of bank's log differs from bank's: the swap shows from bank's side too
        assert any("(copy held by telco)" in p for p in bank_log["problems"]), bank_log["problems"]

        telco_report = apis["telco"].post("/api/ledger/verify")
        assert not telco_report["ok"]
        held_bank = " ".join(telco_report["parties"]["bank"]["problems"])
        assert "out_of_order at 3" in held_bank, held_bank
        own = " ".join(telco_report["parties"]["telco"]["problems"])
        assert "missing" in own or "out_of_order" in own, own
    finally:
        local.stop()
