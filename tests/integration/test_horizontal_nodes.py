"""Horizontal federated learning between real node processes over mutual-TLS gRPC on loopback:
an aggregator and three clients train the CNN on scikit-learn's digits; with secure aggregation a
client killed mid-training drops out and the others finish; a killed aggregator's job resumes from
its checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.data.federated import iid_partition
from jointly.runtime.client import JobClient
from jointly.runtime.launcher import LocalFederation

from .conftest import output_dir, run_job

CLIENTS = ["clinic-a", "clinic-b", "clinic-c"]
PARTIES = ["hub", *CLIENTS]


def write_digits(data: Path, clients: list[str], seed: int = 0) -> None:
    """Each client's share of digits as a MedMNIST-style .npz (8x8 uint8 images, its own test rows)."""
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:360], order[360:]
    parts = iid_partition(len(train), len(clients), seed)
    tparts = iid_partition(len(test), len(clients), seed + 1)
    for name, p, q in zip(clients, parts, tparts, strict=True):
        tr, te = train[p], test[q]
        np.savez(
            data / f"{name}.npz",
            train_images=images[tr],
            train_labels=labels[tr],
            val_images=images[te[:0]],
            val_labels=labels[te[:0]],
            test_images=images[te],
            test_labels=labels[te],
        )


def digits_spec(name: str, clients: list[str], **horizontal: Any) -> JobSpec:
    section = {
        "aggregator": "hub",
        "model": {"family": "cnn", "num_classes": 10, "in_channels": 1, "image_size": 8},
        "rounds": 8,
        "lr": 0.05,
        "momentum": 0.9,
        "round_timeout_s": 60,
        **horizontal,
    }
    parties: dict[str, Any] = {"hub": {}, **{c: {"data": f"{c}.npz"} for c in clients}}
    return JobSpec.from_dict({"name": name, "kind": "horizontal", "parties": parties, "horizontal": section})


def _result(local: LocalFederation, party: str, job_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((output_dir(local, party, job_id) / "result.json").read_text())
    return out


@pytest.fixture(scope="module")
def horizontal(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("horizontal")
    fed = init_federation(PARTIES, tmp / "fed", name="it-horizontal")
    data = tmp / "data"
    data.mkdir()
    write_digits(data, CLIENTS)
    local = LocalFederation(fed, tmp, data_dir=data, heartbeat_interval=0.5, peer_dead_after=5.0, workers=1)
    local.start()
    try:
        yield local
    finally:
        local.stop()


def test_nodes_warm_up_by_loading_the_learning_runtime_after_they_start(horizontal: LocalFederation) -> None:
    horizontal.wait_warm(timeout=120)
    with JobClient(horizontal.federation, "hub") as client:
        assert all(client.health(p)["warm"] is True for p in PARTIES)
    for party in PARTIES:  # warm because the load succeeded, not because it failed
        log = horizontal.log_path(party).read_text()
        assert f"node {party} warm: federated-learning runtime loaded in" in log, log[-2000:]
        assert "could not preload" not in log


def test_three_clients_train_the_cnn_on_digits_to_90_percent(horizontal: LocalFederation) -> None:
    outcome = run_job(horizontal, digits_spec("it-fedavg", CLIENTS), as_party="hub")
    assert outcome.succeeded, outcome.views
    agg = _result(horizontal, "hub", outcome.job_id)
    assert agg["role"] == "aggregator" and agg["rounds_run"] == 8
    assert agg["metrics"]["accuracy"] >= 0.90, agg["metrics"]
    assert agg["metrics"]["test_rows"] == 360  # the union of the clients' test rows
    rounds = agg["rounds"]
    assert [r["round"] for r in rounds] == list(range(9))
    assert all(r["contributed"] == CLIENTS for r in rounds[1:])
    assert all(r["bytes_sent"] > 0 and r["bytes_received"] > 0 for r in rounds[1:])
    # every party keeps the same final model
    models = [np.load(output_dir(horizontal, p, outcome.job_id) / "model" / "weights.npz") for p in PARTIES]
    for m in models[1:]:
        assert all(np.array_equal(m[k], models[0][k]) for k in models[0].files)
    client = _result(horizontal, "clinic-a", outcome.job_id)
    assert client["role"] == "client" and client["rounds_trained"] == 8 and "rounds" not in client


def test_secure_aggregation_survives_a_client_killed_mid_training(horizontal: LocalFederation) -> None:
    spec = digits_spec("it-secagg-drop", CLIENTS, rounds=30, secure_aggregation={"enabled": True, "threshold": 2})
    with JobClient(horizontal.federation, "hub") as client:
        job_id = client.submit(spec)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            view = client.status("hub", job_id)
            if view["state"] != "running" or str(view.get("stage", "")).startswith("round-3"):
                break
            time.sleep(0.05)
        assert view["state"] == "running", view
        horizontal.kill("clinic-c")
        try:
            outcome = client.watch(job_id, ["hub", "clinic-a", "clinic-b"], timeout=180)
        finally:
            horizontal.restart_party("clinic-c")
    assert all(v is not None and v["state"] == "succeeded" for v in outcome.views.values()), outcome.views
    agg = _result(horizontal, "hub", job_id)
    assert "clinic-c" in agg["dropped"]
    last = agg["rounds"][-1]
    assert last["contributed"] == ["clinic-a", "clinic-b"] and agg["rounds_run"] == 30
    assert agg["metrics"]["accuracy"] >= 0.85, agg["metrics"]


def test_a_killed_aggregator_fails_the_job_and_a_rerun_resumes_from_its_checkpoint(
    horizontal: LocalFederation,
) -> None:
    spec = digits_spec("it-resume", CLIENTS, rounds=12)
    with JobClient(horizontal.federation, "clinic-a") as client:
        job_id = client.submit(spec)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            view = client.status("clinic-a", job_id)
            if view["state"] != "running" or str(view.get("stage", "")).startswith("round-4"):
                break
            time.sleep(0.05)
        assert view["state"] == "running", view
        horizontal.kill("hub")
        try:
            outcome = client.watch(job_id, CLIENTS, timeout=60)
        finally:
            horizontal.restart_party("hub")
    for c in CLIENTS:
        error = (outcome.views[c] or {}).get("error")
        assert error is not None and error["party"] == "hub", outcome.views
    checkpoint = horizontal.workdir("hub") / "jobs" / job_id / "checkpoint" / "state.json"
    saved = json.loads(checkpoint.read_text())["round"]
    assert 3 <= saved < 12

    rerun = digits_spec("it-resume", CLIENTS, rounds=12, resume=job_id)
    again = run_job(horizontal, rerun, as_party="hub")
    assert again.succeeded, again.views
    agg = _result(horizontal, "hub", again.job_id)
    assert agg["resumed_after_round"] == saved and agg["rounds_run"] == 12
    assert [r["round"] for r in agg["rounds"]] == list(range(13))
    assert agg["metrics"]["accuracy"] >= 0.9
    assert _result(horizontal, "clinic-b", again.job_id)["rounds_trained"] == 12 - saved
