"""Vertical jobs between real node processes over loopback mutual-TLS gRPC: PSI alignment, SecureBoost and
hetero LR training with a guest and two hosts (and an arbiter), stored model parts, federated scoring, and a
host killed mid-training."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.runtime.client import JobClient
from jointly.runtime.launcher import LocalFederation
from tests.integration.conftest import DEAD_AFTER, HEARTBEAT, output_dir, run_job

pytestmark = pytest.mark.integration

PARTIES = ["bank", "telco", "insurer", "arbiter"]
#: small keys keep the suite fast; the key-size policy itself is tested in the unit tests
FAST_KEYS = {"key_bits": 1024, "allow_unsafe_key_size": True}


def _split_breast(data: Path) -> dict[str, Any]:
    """The breast-cancer set across a guest (label + 10 columns) and two hosts (10 columns each).

    Each party lacks a few different patients, so PSI has work to do; returns the expected common ids.
    """
    raw = load_breast_cancer()
    ids = np.array([f"P{i:04d}" for i in range(len(raw.target))])
    rng = np.random.default_rng(3)
    keep = {p: np.sort(rng.permutation(len(ids))[: len(ids) - 25]) for p in ("bank", "telco", "insurer")}
    cols = {"bank": range(0, 10), "telco": range(10, 20), "insurer": range(20, 30)}
    for party, rows in keep.items():
        frame = pd.DataFrame(raw.data[rows][:, list(cols[party])], columns=[f"{party}_x{j}" for j in cols[party]])
        frame.insert(0, "id", ids[rows])
        if party == "bank":
            frame.insert(1, "y", raw.target[rows])
        frame.sample(frac=1.0, random_state=1).to_csv(data / f"{party}.csv", index=False)
    common = set(ids[keep["bank"]]) & set(ids[keep["telco"]]) & set(ids[keep["insurer"]])
    return {"common": common}


@pytest.fixture(scope="module")
def vertical(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFederation, set[str]]]:
    tmp = tmp_path_factory.mktemp("vertical")
    fed = init_federation(PARTIES, tmp / "fed", name="it-vertical")
    data = tmp / "data"
    data.mkdir()
    info = _split_breast(data)
    local = LocalFederation(
        fed, tmp, data_dir=data, heartbeat_interval=HEARTBEAT, peer_dead_after=DEAD_AFTER, workers=1
    )
    local.start()
    try:
        yield local, info["common"]
    finally:
        local.stop()


def _parties(arbiter: bool = False) -> dict[str, dict[str, Any]]:
    parties: dict[str, dict[str, Any]] = {
        "bank": {"data": "bank.csv", "label": "y"},
        "telco": {"data": "telco.csv"},
        "insurer": {"data": "insurer.csv"},
    }
    if arbiter:
        parties["arbiter"] = {}
    return parties


def _result(local: LocalFederation, party: str, job_id: str) -> dict[str, Any]:
    return json.loads((output_dir(local, party, job_id) / "result.json").read_text())


def test_secureboost_with_two_hosts_trains_evaluates_and_scores(vertical: tuple[LocalFederation, set[str]]) -> None:
    local, common = vertical
    spec = JobSpec.from_dict(
        {
            "name": "it-secureboost",
            "kind": "secureboost",
            "parties": _parties(),
            "vertical": {"test_fraction": 0.25, "seed": 5},
            "secureboost": {"n_trees": 3, "max_depth": 3, "max_bins": 16, **FAST_KEYS},
        }
    )
    outcome = run_job(local, spec)
    assert outcome.succeeded, outcome.views
    guest = _result(local, "bank", outcome.job_id)
    assert guest["aligned_rows"] == len(common)
    assert guest["metrics"]["auc"] > 0.9 and guest["baseline"]["auc"] > 0.5
    assert len(guest["history"]) == 3
    metrics = json.loads((output_dir(local, "bank", outcome.job_id) / "metrics.json").read_text())
    assert metrics["roc"]["fpr"][0] == 0.0 and metrics["gain"]
    for host in ("telco", "insurer"):
        result = _result(local, host, outcome.job_id)
        assert result["aligned_rows"] == len(common)
        assert not {"metrics", "baseline", "history"} & set(result)  # hosts learn no scores or metrics
        assert not (output_dir(local, host, outcome.job_id) / "metrics.json").exists()
        meta = json.loads((output_dir(local, host, outcome.job_id) / "model" / "meta.json").read_text())
        assert meta["role"] == "host" and meta["model_id"] == outcome.job_id
        assert all(f.startswith(host) for f in meta["features"])  # each party keeps only its own columns

    scoring = JobSpec.from_dict(
        {
            "name": "it-secureboost-score",
            "kind": "predict",
            "parties": {p: {k: v for k, v in ref.items() if k != "label"} for p, ref in _parties().items()},
            "predict": {"model": "it-secureboost"},  # by name: the latest version
        }
    )
    scored = run_job(local, scoring)
    assert scored.succeeded, scored.views
    predictions = pd.read_csv(output_dir(local, "bank", scored.job_id) / "predictions.csv", dtype={"id": str})
    assert set(predictions["id"]) == common
    assert predictions["score"].between(0, 1).all()
    for host in ("telco", "insurer"):
        assert not (output_dir(local, host, scored.job_id) / "predictions.csv").exists()
        assert _result(local, host, scored.job_id)["model_version"] == "it-secureboost@v1"


def test_hetero_lr_with_an_arbiter(vertical: tuple[LocalFederation, set[str]]) -> None:
    local, common = vertical
    spec = JobSpec.from_dict(
        {
            "name": "it-hetero-lr",
            "kind": "hetero_lr",
            "parties": _parties(arbiter=True),
            "vertical": {"arbiter": "arbiter", "test_fraction": 0.25, "seed": 5},
            "hetero_lr": {"max_iter": 3, "batch_size": 128, **FAST_KEYS},
        }
    )
    outcome = run_job(local, spec)
    assert outcome.succeeded, outcome.views
    guest = _result(local, "bank", outcome.job_id)
    assert guest["aligned_rows"] == len(common) and guest["metrics"]["auc"] > 0.9
    assert _result(local, "arbiter", outcome.job_id)["role"] == "arbiter"


def test_a_host_killed_mid_training_fails_the_job_naming_it(tmp_path: Path) -> None:
    fed = init_federation(["bank", "telco"], tmp_path / "fed", name="kill-vertical")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.standard_normal((n, 6))
    ids = [f"C{i}" for i in range(n)]
    bank = pd.DataFrame(x[:, :3], columns=["a", "b", "c"]).assign(y=(x.sum(axis=1) > 0).astype(int))
    bank.insert(0, "id", ids)
    bank.to_csv(data / "bank.csv", index=False)
    telco = pd.DataFrame(x[:, 3:], columns=["d", "e", "f"])
    telco.insert(0, "id", ids)
    telco.to_csv(data / "telco.csv", index=False)
    spec = JobSpec.from_dict(
        {
            "name": "kill-secureboost",
            "kind": "secureboost",
            "parties": {"bank": {"data": "bank.csv", "label": "y"}, "telco": {"data": "telco.csv"}},
            "secureboost": {"n_trees": 50, "max_depth": 4, **FAST_KEYS},
        }
    )
    local = LocalFederation(fed, tmp_path, data_dir=data, heartbeat_interval=0.5, peer_dead_after=5.0, workers=1)
    local.start()
    try:
        with JobClient(local.federation, "bank") as client:
            job_id = client.submit(spec)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                view = client.status("bank", job_id)
                if view["state"] != "running" or str(view.get("stage", "")).startswith("train/"):
                    break
                time.sleep(0.05)
            assert view["state"] == "running", view
            killed_at = time.monotonic()
            local.kill("telco")
            outcome = client.watch(job_id, ["bank"], timeout=60)
            assert time.monotonic() - killed_at < 30
        error = (outcome.views["bank"] or {}).get("error")
        assert error is not None and error["party"] == "telco", outcome.views
        assert error["stage"].startswith("train"), error
        assert not output_dir(local, "bank", job_id).exists()  # no half-written model part
    finally:
        local.stop()
