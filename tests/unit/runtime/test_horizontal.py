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
