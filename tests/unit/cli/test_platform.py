"""The platform commands (``jointly dataset|job|ledger|user``) against the REST API served over a real local port.

The API runs in uvicorn on a background thread over the in-memory fake
services; each test gets fresh services, so tests do not see each other's state.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from click.testing import CliRunner, Result

from jointly.cli.api_client import ApiClient, RemoteDataError, locate_node
from jointly.cli.main import cli, main
from jointly.errors import AuthenticationError, ConfigError, DataError, JointlyError, NotFound, TransportError
from jointly.node.api import create_api
from tests.unit.node.api.fake_services import TOKENS, FakeServices, partner_job, psi_spec


class _ApiThread:
    def __init__(self) -> None:
        self.app = create_api(FakeServices())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test API server did not start")
            time.sleep(0.01)
        self._sock = sock

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._sock.close()


@pytest.fixture(scope="module")
def api() -> Iterator[_ApiThread]:
    server = _ApiThread()
    yield server
    server.stop()


@pytest.fixture
def services(api: _ApiThread) -> FakeServices:
    fresh = FakeServices()
    api.app.state.services = fresh
    return fresh


class Run:
    """``jointly ...`` against the test node as a given role."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner(env={"COLUMNS": "250", "JOINTLY_NODE": None, "JOINTLY_TOKEN": None})

    def __call__(self, *args: str, role: str = "admin", token: str | None = None) -> Result:
        auth = ["--node", self.url, "--token", token or TOKENS[role]]  # type: ignore[index]
        return self.runner.invoke(cli, [*args, *auth])

    def json(self, *args: str, role: str = "admin") -> Any:
        result = self(*args, "--json", role=role)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def run(api: _ApiThread, services: FakeServices) -> Run:
    return Run(api.url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- datasets


def test_dataset_add_list_show_remove(run: Run, services: FakeServices) -> None:
    r = run("dataset", "add", "cust", "/data/bank.csv", "--id-column", "customer_id", "--description", "customers")
    assert r.exit_code == 0, r.output
    assert "registered dataset cust: 3 rows, 2 columns" in r.stdout
    assert "customer_id (id)" in r.stdout
    r = run("dataset", "list", role="auditor")
    assert r.exit_code == 0
    assert "cust" in r.stdout and "/data/bank.csv" in r.stdout and "customers" in r.stdout
    assert [d["name"] for d in run.json("dataset", "list")] == ["cust"]
    r = run("dataset", "show", "cust", role="auditor")
    assert "income" in r.stdout and "float64" in r.stdout
    assert run.json("dataset", "show", "cust")["id_column"] == "customer_id"
    r = run("dataset", "remove", "cust", role="analyst")
    assert r.exit_code == 0
    assert "removed dataset cust" in r.stdout
    assert services.datasets.items == {}


def test_dataset_errors_have_the_nodes_message_and_exit_code(run: Run) -> None:
    r = run("dataset", "show", "nope")
    assert r.exit_code == NotFound.exit_code == 2
    assert "no dataset 'nope' on node 'bank'" in r.stderr
    r = run("dataset", "add", "x", "/data/bank.csv", "--id-column", "nope")
    assert r.exit_code == 2
    assert "no id column 'nope'" in r.stderr
    r = run("dataset", "add", "x", "/data/notes.txt", "--id-column", "id")
    assert r.exit_code == DataError.exit_code == 3
    r = run("dataset", "add", "bad name", "/data/bank.csv", "--id-column", "customer_id")
    assert r.exit_code == 2
    assert "body.name" in r.stderr
    r = run("dataset", "add", "x", "/data/bank.csv", "--id-column", "customer_id", role="auditor")
    assert r.exit_code == 9
    assert "auditor" in r.stderr


def test_an_existing_relative_path_is_sent_absolute(run: Run, services: FakeServices, tmp_path: Path) -> None:
    with run.runner.isolated_filesystem(temp_dir=tmp_path):
        Path("t.csv").write_text("id\n1\n")
        r = run("dataset", "add", "t", "t.csv", "--id-column", "id")
    assert r.exit_code == 2
    assert str(tmp_path) in r.stderr  # the fake node names the absolute path it was given


# ---------------------------------------------------------------- jobs


def _job_file(tmp_path: Path, spec: object) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_job_propose_list_show(run: Run, services: FakeServices, tmp_path: Path) -> None:
    r = run("job", "propose", _job_file(tmp_path, psi_spec("overlap")), role="analyst")
    assert r.exit_code == 0, r.output
    (job_id,) = services.jobs.jobs
    assert f"proposed job {job_id} (pending); waiting for telco" in r.stdout
    assert services.jobs.jobs[job_id]["spec"] == psi_spec("overlap")
    r = run("job", "list", role="auditor")
    assert job_id in r.stdout and "pending" in r.stdout and "jobs 1-1 of 1" in r.stdout
    assert run.json("job", "list", "--state", "succeeded") == {"total": 0, "jobs": []}
    r = run("job", "show", job_id, role="auditor")
    assert r.exit_code == 0
    out = r.stdout
    for text in (
        "overlap (psi)",
        "state pending",
        "reads bank.csv: customer_id",
        "approvals",
        "analyst",
        "proposed here",
    ):
        assert text in out, text
    assert "waiting for: telco" in out
    assert "timeline" in out and "proposed" in out
    assert run.json("job", "show", job_id)["job_id"] == job_id


def test_job_propose_refuses_bad_files_and_specs(run: Run, services: FakeServices, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    r = run("job", "propose", str(bad_yaml))
    assert r.exit_code == 2
    assert "not valid YAML" in r.stderr
    r = run("job", "propose", _job_file(tmp_path, ["a", "list"]))
    assert r.exit_code == 2
    assert "must hold a mapping" in r.stderr
    r = run("job", "propose", _job_file(tmp_path, {**psi_spec(), "kind": "magic"}))
    assert r.exit_code == 2
    assert "kind" in r.stderr
    r = run("job", "propose", _job_file(tmp_path, psi_spec()), role="auditor")
    assert r.exit_code == 9
    assert services.jobs.jobs == {}


def test_approve_reject_cancel(run: Run, services: FakeServices) -> None:
    first, second, third = (partner_job(services, n) for n in ("one", "two", "three"))
    pending = run("job", "pending", role="auditor")
    assert all(j in pending.stdout for j in (first, second, third))
    r = run("job", "approve", first, "--reason", "fine", role="analyst")
    assert r.exit_code == 0, r.output
    assert f"approved job {first}: now approved" in r.stdout
    assert services.jobs.jobs[first]["approvals"][-1]["reason"] == "fine"
    r = run("job", "reject", second, "--reason", "uses income", role="analyst")
    assert r.exit_code == 0
    assert f"rejected job {second}: now rejected" in r.stdout
    r = run("job", "reject", third, role="analyst")
    assert r.exit_code == 2  # click: --reason is required
    assert "--reason" in r.output
    r = run("job", "approve", first)
    assert r.exit_code == 2
    assert "not waiting" in r.stderr
    r = run("job", "approve", third, role="auditor")
    assert r.exit_code == 9
    assert "may not decide job" in r.stderr
    r = run("job", "cancel", third, role="analyst")
    assert r.exit_code == 0
    assert "now cancelled" in r.stdout
    logs = run("job", "logs", third)
    assert "proposed" in logs.stdout and "cancelled" in logs.stdout
    assert [e["kind"] for e in run.json("job", "logs", third)] == ["proposed", "cancelled"]
    r = run("job", "show", "no-such-job")
    assert r.exit_code == 2
    assert "no job 'no-such-job'" in r.stderr


def _script(states: list[dict[str, Any]]) -> Any:
    def advance(job: dict[str, Any]) -> None:
        if states:
            change = states.pop(0)
            if "event" in change:
                job["events"].append(change.pop("event"))
            job.update(change)

    return advance


def test_propose_and_follow_until_success(run: Run, services: FakeServices, tmp_path: Path) -> None:
    event = {"time": 1.7e9, "kind": "stage", "stage": "align", "message": "aligning ids"}
    services.jobs.on_get = _script(
        [{}, {}, {"state": "running", "stage": "align", "event": event}, {"state": "succeeded", "result": {"n": 3}}]
    )
    r = run("job", "propose", _job_file(tmp_path, psi_spec()), "--follow", "--interval", "0")
    assert r.exit_code == 0, r.output
    assert "state running (stage align)" in r.stdout
    assert "aligning ids" in r.stdout
    assert "succeeded" in r.stdout and '"n": 3' in r.stdout


def test_follow_reports_the_failed_party_and_stage(run: Run, services: FakeServices, tmp_path: Path) -> None:
    error = {"party": "telco", "stage": "psi", "reason": "disconnected"}
    services.jobs.on_get = _script([{}, {}, {"state": "failed", "error": error}])
    r = run("job", "propose", _job_file(tmp_path, psi_spec()), "--follow", "--interval", "0")
    assert r.exit_code == 6
    assert "party 'telco' failed in stage 'psi': disconnected" in r.stderr


def test_follow_reports_a_rejection(run: Run, services: FakeServices, tmp_path: Path) -> None:
    rejection = {"party": "telco", "decision": "reject", "user": "t", "reason": "not now", "created": 1.7e9}

    def reject(job: dict[str, Any]) -> None:
        if job["approvals"] and rejection not in job["approvals"]:
            job["approvals"].append(rejection)
            job["state"] = "rejected"

    services.jobs.on_get = reject
    r = run("job", "propose", _job_file(tmp_path, psi_spec()), "--follow", "--interval", "0")
    assert r.exit_code == 1
    assert "rejected by telco (not now)" in r.stderr


# ---------------------------------------------------------------- ledger


def test_ledger_show(run: Run) -> None:
    r = run("ledger", "show", role="auditor")
    assert r.exit_code == 0
    assert "ledger of bank (5 entries)" in r.stdout
    assert "node_started" in r.stdout and "job_proposed" in r.stdout
    page = run.json("ledger", "show", "--party", "telco", "--job", "psi-0001", "--limit", "1")
    assert page["party"] == "telco"
    assert [e["seq"] for e in page["entries"]] == [1]
    r = run("ledger", "show", "--limit", "501")
    assert r.exit_code == 2


def test_ledger_verify_ok_and_tampered(run: Run, services: FakeServices) -> None:
    r = run("ledger", "verify", role="auditor")
    assert r.exit_code == 0, r.output
    assert "10 entries checked" in r.stdout and "ledger ok" in r.stdout
    services.ledger.problems["telco"] = ["entry 3: bad signature", "head 2: not consistent with head 1"]
    r = run("ledger", "verify", role="auditor")
    assert r.exit_code == 1
    assert "FAILED" in r.stdout
    assert "telco: entry 3: bad signature" in r.stdout
    assert "telco: head 2: not consistent with head 1" in r.stdout
    assert "ledger verification failed (2 problem(s))" in r.stderr
    r = run("ledger", "verify", "--json", role="auditor")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["parties"]["telco"]["ok"] is False


# ---------------------------------------------------------------- users


def test_user_add_prints_the_token_once_and_list(run: Run, services: FakeServices) -> None:
    r = run("user", "add", "carol", "--role", "auditor")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "token-of-carol"  # stdout is only the token, for scripts
    assert "not shown again" in r.stderr
    r = run("user", "list")
    assert "carol" in r.stdout and "auditor" in r.stdout
    assert [u["name"] for u in run.json("user", "list")] == ["admin", "analyst", "auditor", "carol"]
    r = run("user", "add", "dave", "--role", "admin", role="analyst")
    assert r.exit_code == 9
    assert "dave" not in services.users.users
    r = run("user", "add", "dave", "--role", "root")
    assert r.exit_code == 2


# ---------------------------------------------------------------- finding the node, errors


def test_bad_token_is_a_clear_error(run: Run) -> None:
    r = run("job", "list", token="not-a-token")
    assert r.exit_code == AuthenticationError.exit_code == 5
    assert "refused the token (unknown or disabled token)" in r.stderr
    assert "not-a-token" not in r.output


def test_unreachable_node_is_a_clear_error(api: _ApiThread) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    r = CliRunner().invoke(cli, ["dataset", "list", "--node", url, "--token", "t"])
    assert r.exit_code == TransportError.exit_code == 5
    assert f"cannot reach the node at {url}" in r.stderr


def test_no_node_given(tmp_path: Path) -> None:
    runner = CliRunner(env={"JOINTLY_NODE": None, "JOINTLY_TOKEN": None})
    r = runner.invoke(cli, ["job", "list"])
    assert r.exit_code == 2
    assert "which node?" in r.stderr
    r = runner.invoke(cli, ["job", "list", "--workdir", str(tmp_path)])
    assert r.exit_code == 2
    assert "api.json does not exist" in r.stderr


def test_workdir_and_environment(api: _ApiThread, services: FakeServices, tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text(json.dumps({"url": api.url}))
    (tmp_path / "admin.token").write_text(TOKENS["admin"] + "\n")
    runner = CliRunner(env={"JOINTLY_NODE": None, "JOINTLY_TOKEN": None})
    r = runner.invoke(cli, ["user", "list", "--workdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    env = {"JOINTLY_NODE": api.url, "JOINTLY_TOKEN": TOKENS["auditor"]}
    r = CliRunner(env=env).invoke(cli, ["user", "list"])
    assert r.exit_code == 9  # the auditor's token from the environment
    r = CliRunner(env=env).invoke(cli, ["user", "list", "--token", TOKENS["admin"]])
    assert r.exit_code == 0


def test_main_maps_failures_to_exit_codes(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["jointly", "job", "show", "no-such-job", "--node", run.url, "--token", TOKENS["admin"]]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2


def test_locate_node_order(tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text(json.dumps({"url": "http://w:1"}))
    (tmp_path / "admin.token").write_text("wt")
    env = {"JOINTLY_NODE": "http://e:1", "JOINTLY_TOKEN": "et"}
    assert locate_node(node=None, token=None, workdir=None, environ=env) == locate_node(
        node="http://e:1", token="et", workdir=None, environ={}
    )
    found = locate_node(node=None, token=None, workdir=tmp_path, environ=env)
    assert (found.url, found.token) == ("http://w:1", "wt")
    found = locate_node(node="http://n:1", token="nt", workdir=tmp_path, environ=env)
    assert (found.url, found.token) == ("http://n:1", "nt")
    (tmp_path / "api.json").write_text("[]")
    with pytest.raises(ConfigError, match="no 'url'"):
        locate_node(node=None, token=None, workdir=tmp_path, environ={})


def _mock(status: int, content: bytes, content_type: str = "application/json") -> ApiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"content-type": content_type})

    return ApiClient("http://node:1", "t", transport=httpx.MockTransport(handler))


def test_client_error_mapping() -> None:
    with pytest.raises(RemoteDataError, match=r"bank\.csv, row 3: empty id") as info:
        _mock(422, b'{"detail": "bank.csv, row 3: empty id"}').datasets()
    assert info.value.exit_code == 3
    with pytest.raises(ConfigError, match="invalid request"):
        _mock(422, b'{"detail": "invalid request: body.name", "errors": []}').datasets()
    with pytest.raises(JointlyError, match="the node at http://node:1 failed: internal error") as err:
        _mock(500, b'{"detail": "internal error"}').datasets()
    assert type(err.value) is JointlyError
    with pytest.raises(TransportError, match="did not answer with JSON"):
        _mock(200, b"<html>", "text/html").datasets()
    with pytest.raises(TransportError, match="unexpected answer"):
        _mock(200, b'{"a": 1}').datasets()
    with pytest.raises(ConfigError, match="HTTP 418"):
        _mock(418, b"teapot", "text/plain").datasets()
    with pytest.raises(ConfigError, match="must start with http"):
        ApiClient("node:8400")


def test_client_quotes_path_segments() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        assert request.headers["authorization"] == "Bearer t"
        return httpx.Response(200, json={})

    client = ApiClient("http://node:1/", "t", transport=httpx.MockTransport(handler))
    client.model("credit risk@v2")
    client.ledger(party="telco")
    assert seen == ["/api/models/credit%20risk%40v2", "/api/ledger?party=telco&offset=0&limit=100"]


def test_follow_with_json_prints_only_the_final_job(run: Run, services: FakeServices, tmp_path: Path) -> None:
    services.jobs.on_get = _script([{}, {}, {"state": "running"}, {"state": "succeeded", "result": {"n": 3}}])
    view = run.json("job", "propose", _job_file(tmp_path, psi_spec()), "--follow", "--interval", "0")
    assert view["state"] == "succeeded"
    assert view["result"] == {"n": 3}
