"""Vertical jobs through the runtime over the in-memory channel: alignment, evaluation, model parts, scoring.

The same runners over real node processes and gRPC are in tests/integration/test_vertical_nodes.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jointly.channel import Channel
from jointly.channel.memory import MemoryHub
from jointly.config.job import JobSpec
from jointly.crypto import paillier
from jointly.errors import ConfigError, DataError
from jointly.progress import NullProgress
from jointly.runtime.jobs import PartyContext, check_spec, run_party
from jointly.runtime.models import ModelStore, new_model_info, write_model_part

FAST_KEYS = {"key_bits": 1024, "allow_unsafe_key_size": True}


@pytest.fixture(autouse=True)
def _one_worker() -> None:
    paillier.set_workers(1)


def _tables(tmp: Path, *, n: int = 300, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    y = (x[:, 0] + 2 * x[:, 2] + 0.3 * rng.standard_normal(n) > 0).astype(int)
    ids = [f"C{i:05d}" for i in range(n)]
    bank = pd.DataFrame({"id": ids, "y": y, "a": x[:, 0], "b": x[:, 1]}).iloc[10:]  # 10 customers only at telco
    telco = pd.DataFrame({"id": ids, "c": x[:, 2], "d": x[:, 3]}).iloc[: n - 20]  # 20 only at the bank
    bank.sample(frac=1.0, random_state=1).to_csv(tmp / "bank.csv", index=False)
    telco.sample(frac=1.0, random_state=2).to_csv(tmp / "telco.csv", index=False)


def _train_spec(kind: str = "secureboost", **changes: Any) -> JobSpec:
    raw: dict[str, Any] = {
        "name": "risk",
        "kind": kind,
        "parties": {"bank": {"data": "bank.csv", "label": "y"}, "telco": {"data": "telco.csv"}},
        "vertical": {"test_fraction": 0.25, "seed": 3},
        kind: {"n_trees": 3, "max_depth": 3, **FAST_KEYS}
        if kind == "secureboost"
        else {"max_iter": 3, "batch_size": 64, **FAST_KEYS},
    }
    raw.update(changes)
    return JobSpec.from_dict(raw)


def _run(spec: JobSpec, tmp: Path, job_id: str) -> dict[str, dict[str, Any]]:
    def party(ch: Channel) -> dict[str, Any]:
        ctx = PartyContext(
            spec=spec,
            party=ch.party,
            job_id=job_id,
            data_dir=tmp,
            progress=NullProgress(),
            workers=1,
            jobs_dir=tmp / ch.party / "jobs",
        )
        return run_party(ctx, ch, tmp / ch.party / "jobs" / job_id / "output")

    return MemoryHub(list(spec.party_names)).run(dict.fromkeys(spec.party_names, party), timeout=120)


@pytest.mark.parametrize("kind", ["secureboost", "hetero_lr"])
def test_training_aligns_evaluates_and_keeps_a_part_per_party(tmp_path: Path, kind: str) -> None:
    _tables(tmp_path)
    out = _run(_train_spec(kind), tmp_path, "job-1")
    bank, telco = out["bank"], out["telco"]
    assert bank["aligned_rows"] == telco["aligned_rows"] == 270
    assert bank["train_rows"] + bank["test_rows"] == 270 and bank["test_rows"] == round(270 * 0.25)
    assert bank["metrics"]["auc"] > 0.8 and bank["metrics"]["auc"] >= bank["baseline"]["auc"] - 0.02
    assert not {"metrics", "baseline", "history"} & set(telco)
    metrics = json.loads((tmp_path / "bank" / "jobs" / "job-1" / "output" / "metrics.json").read_text())
    assert set(metrics["gain"]) >= {"auc", "ks"}
    for party, features in (("bank", ["a", "b"]), ("telco", ["c", "d"])):
        info, part = ModelStore(tmp_path / party / "jobs").load("risk")
        assert info.model_id == "job-1" and info.features == tuple(features) and info.version == 1
        assert info.role == ("guest" if party == "bank" else "host")
        assert "y" not in json.dumps(part).split('"')  # no label column name, let alone labels, in any part


def test_a_stored_model_scores_new_rows_and_only_the_guest_gets_scores(tmp_path: Path) -> None:
    _tables(tmp_path)
    _run(_train_spec(), tmp_path, "job-1")
    _tables(tmp_path, n=120, seed=9)  # new customers
    for name in ("bank", "telco"):
        frame = pd.read_csv(tmp_path / f"{name}.csv")
        frame.drop(columns=[c for c in ("y",) if c in frame]).to_csv(tmp_path / f"{name}_new.csv", index=False)
    spec = JobSpec.from_dict(
        {
            "name": "score",
            "kind": "predict",
            "parties": {"bank": {"data": "bank_new.csv"}, "telco": {"data": "telco_new.csv"}},
            "predict": {"model": "risk@v1"},
        }
    )
    out = _run(spec, tmp_path, "job-2")
    assert out["bank"]["scored_rows"] == out["telco"]["scored_rows"] == 90
    predictions = pd.read_csv(tmp_path / "bank" / "jobs" / "job-2" / "output" / "predictions.csv")
    assert len(predictions) == 90 and predictions["score"].between(0, 1).all()
    assert not (tmp_path / "telco" / "jobs" / "job-2" / "output" / "predictions.csv").exists()


def test_without_alignment_the_tables_must_hold_the_same_ids(tmp_path: Path) -> None:
    _tables(tmp_path)
    spec = _train_spec(vertical={"align": False})
    with pytest.raises(DataError, match="ids differ"):
        _run(spec, tmp_path, "job-1")
    assert not (tmp_path / "bank" / "jobs" / "job-1" / "output").exists()


def test_a_non_numeric_feature_is_a_data_error_naming_row_and_column(tmp_path: Path) -> None:
    _tables(tmp_path)
    frame = pd.read_csv(tmp_path / "telco.csv")
    frame["c"] = frame["c"].astype(object)
    frame.loc[4, "c"] = "n/a?"
    frame.to_csv(tmp_path / "telco.csv", index=False)
    with pytest.raises(DataError, match=r"row 6.*'c' is not numeric"):
        _run(_train_spec(), tmp_path, "job-1")


def test_bad_model_parameters_are_refused_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="n_tres"):
        check_spec(_train_spec(secureboost={"n_tres": 3}))
    with pytest.raises(ConfigError):
        check_spec(_train_spec(secureboost={"key_bits": 1024}))  # small keys only with the unsafe flag


def test_models_are_versioned_by_name(tmp_path: Path) -> None:
    for i, name in enumerate(["risk", "risk", "churn"]):
        out = tmp_path / f"job-{i}" / "output"
        info = new_model_info(
            model_id=f"job-{i}",
            name=name,
            kind="secureboost",
            party="bank",
            role="guest",
            guest="bank",
            parties=("bank", "telco"),
            features=("a",),
        )
        write_model_part(out, info, {"n": i})
        time.sleep(0.01)
    store = ModelStore(tmp_path)
    assert [(m.name, m.version) for m in store.list()] == [("risk", 1), ("risk", 2), ("churn", 1)]
    assert store.load("risk")[1] == {"n": 1} and store.load("risk@v1")[1] == {"n": 0}
    assert store.load("job-2")[0].name == "churn"
    with pytest.raises(ConfigError, match="no model 'fraud'"):
        store.resolve("fraud")
