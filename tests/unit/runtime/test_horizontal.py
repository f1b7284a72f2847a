"""A horizontal client's data loading: tables, images, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jointly.config.job import JobSpec
from jointly.errors import ConfigError, DataError
from jointly.progress import NullProgress
from jointly.runtime.horizontal import load_client_data, model_spec
from jointly.runtime.jobs import PartyContext

MLP = {"family": "mlp", "num_classes": 1, "in_features": 3, "hidden": [4]}
CNN = {"family": "cnn", "num_classes": 3, "in_channels": 1, "image_size": 8}


def load(tmp_path: Path, ref: dict[str, Any], model: dict[str, Any]) -> Any:
    spec = JobSpec.from_dict(
        {
            "name": "fl",
            "kind": "horizontal",
            "parties": {"hub": {}, "a": ref, "b": {"data": "other"}},
            "horizontal": {"aggregator": "hub", "model": model, "test_fraction": 0.25},
        }
    )
    ctx = PartyContext(spec=spec, party="a", job_id="j", data_dir=tmp_path, progress=NullProgress())
    assert spec.horizontal is not None
    return load_client_data(ctx, model_spec(spec.horizontal), spec.horizontal)


def table(tmp_path: Path, **columns: Any) -> str:
    pd.DataFrame(columns).to_csv(tmp_path / "t.csv", index=False)
    return "t.csv"


def test_a_table_is_split_into_training_and_test_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    name = table(tmp_path, id=range(40), x=rng.random(40), y=rng.random(40), z=rng.random(40), label=[0, 1] * 20)
    data = load(tmp_path, {"data": name, "label": "label"}, MLP)
    assert data.x_train.shape == (30, 3) and data.x_test.shape == (10, 3)
    assert data.x_train.dtype == np.float32 and set(np.unique(data.y_train)) <= {0, 1}


def images(tmp_path: Path, **override: Any) -> str:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (20, 8, 8), dtype=np.uint8),
        "train_labels": rng.integers(0, 3, 20),
        "val_images": np.zeros((0, 8, 8), np.uint8),
        "val_labels": np.zeros(0, np.int64),
        "test_images": rng.integers(0, 256, (6, 8, 8), dtype=np.uint8),
        "test_labels": rng.integers(0, 3, 6),
        **override,
    }
    np.savez(tmp_path / "i.npz", **arrays)
    return "i.npz"


def test_medmnist_images_become_scaled_channel_first_tensors(tmp_path: Path) -> None:
    data = load(tmp_path, {"data": images(tmp_path)}, CNN)
    assert data.x_train.shape == (20, 1, 8, 8) and data.x_test.shape == (6, 1, 8, 8)
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0


@pytest.mark.parametrize(
    "make,model,error,needle",
    [
        (lambda p: table(p, id=[1, 2], x=[1, 2], y=[1, 2], z=["a", "b"], label=[0, 1]), MLP, DataError, "not numeric"),
        (lambda p: table(p, id=[1, 2], x=[1, 2], y=[1, 2], z=[1, 2], lbl=[0, 1]), MLP, DataError, "label column"),
        (lambda p: table(p, id=[1, 2], x=[1, 2], y=[1, 2], label=[0, 1]), MLP, DataError, "in_features=3"),
        (lambda p: table(p, id=range(4), x=[1] * 4, y=[1] * 4, z=[1] * 4, label=[0.5] * 4), MLP, DataError, "class"),
        (lambda p: images(p, test_images=np.zeros((6, 9, 9), np.uint8)), CNN, DataError, "shape"),
        (lambda p: images(p, train_labels=np.full(20, 7)), CNN, DataError, "out of range"),
        (lambda p: (p / "bad.npz").write_bytes(b"not a zip") and "bad.npz", CNN, DataError, "npz"),
        (lambda p: table(p, id=[1], x=[1], y=[1], z=[1], label=[1]), CNN, ConfigError, "needs images"),
    ],
)
def test_bad_client_data_is_refused_with_a_clear_reason(
    tmp_path: Path, make: Any, model: dict[str, Any], error: type[Exception], needle: str
) -> None:
    name = make(tmp_path)
    with pytest.raises(error, match=needle):
        load(tmp_path, {"data": name, "label": "label"}, model)


def test_a_folder_of_png_images_with_labels_csv_is_a_client_dataset(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"s{i}.png")
        rows.append({"image": f"s{i}.png", "label": i % 3})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    data = load(tmp_path, {"data": "scans"}, CNN)
    assert data.x_train.shape == (9, 1, 8, 8) and data.x_test.shape == (3, 1, 8, 8)
    assert sorted(np.concatenate([data.y_train, data.y_test]).tolist()) == sorted(r["label"] for r in rows)


DIGITS_CNN = CNN | {"num_classes": 10, "options": {"norm": "group"}}


def run_all(tmp_path: Path, horizontal: dict[str, Any], *, job_id: str = "job-1") -> dict[str, dict[str, Any]]:
    """Every party's side of a horizontal job through the runtime (data loading, wrappers, outputs)."""
    from jointly.channel.memory import MemoryHub
    from jointly.data.bundled import demo_horizontal_images
    from jointly.runtime.jobs import run_party

    files = demo_horizontal_images(tmp_path / "data", ("a", "b", "c"))
    spec = JobSpec.from_dict(
        {
            "name": "fl",
            "kind": "horizontal",
            "parties": {"hub": {}, **{c: {"data": str(f)} for c, f in files.items()}},
            "horizontal": {"aggregator": "hub", "model": DIGITS_CNN, "rounds": 3, **horizontal},
        }
    )
    hub = MemoryHub(spec.party_names)
    jobs = tmp_path / "jobs"

    def side(party: str) -> Any:
        def fn(ch: Any) -> dict[str, Any]:
            ctx = PartyContext(
                spec=spec, party=party, job_id=job_id, data_dir=tmp_path, progress=NullProgress(), jobs_dir=jobs / party
            )  # each party's node has its own jobs directory
            return run_party(ctx, ch, jobs / party / job_id / "output")

        return fn

    return hub.run({p: side(p) for p in spec.party_names}, timeout=300)


@pytest.mark.parametrize(
    "horizontal",
    [
        {"dp": {"mode": "central", "noise_multiplier": 0.5, "clip_norm": 0.05, "epsilon": 1000.0}},
        {"dp": {"mode": "central", "noise_multiplier": 0.5, "clip_norm": 0.05, "epsilon": 1000.0, "adaptive": True}},
        {
            "secure_aggregation": {},
            "dp": {"mode": "client", "noise_multiplier": 0.5, "clip_norm": 0.05, "epsilon": 1e3},
        },
        {"strategy": {"name": "fedprox", "mu": 0.01}, "secure_aggregation": {"threshold": 3}},
        {"strategy": {"name": "trimmed_mean", "beta": 0.2}},
    ],
)
def test_the_runtime_assembles_each_privacy_and_strategy_option(tmp_path: Path, horizontal: dict[str, Any]) -> None:
    results = run_all(tmp_path, horizontal)
    agg = results["hub"]
    assert agg["rounds_run"] == 3 and len(agg["rounds"]) == 4
    if "dp" not in horizontal:  # (with three clients, DP noise drowns the updates: no accuracy to expect)
        assert agg["metrics"]["accuracy"] > 0.8
    if "dp" in horizontal:
        from jointly.dp.accountant import RdpAccountant

        assert agg["epsilon"] == pytest.approx(RdpAccountant(0.5, 1.0, 1e-5).epsilon_after(3))
        assert all(r["epsilon"] > 0 for r in agg["rounds"][1:])
    assert all(r["contributed"] == ["a", "b", "c"] for r in agg["rounds"][1:])
    assert {results[c]["rounds_trained"] for c in "abc"} == {3}


def test_dp_sgd_clients_report_their_own_epsilon(tmp_path: Path) -> None:
    horizontal = {
        "dp_sgd": {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "epsilon": 50.0},
        "batch_size": 64,
    }
    results = run_all(tmp_path, horizontal)
    eps = [results[c]["dp_sgd_epsilon"] for c in "abc"]
    assert all(0 < e <= 50.0 for e in eps)
    assert results["hub"]["rounds_run"] == 3
