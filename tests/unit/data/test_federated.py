from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from jointly.data.federated import (
    dirichlet_partition,
    iid_partition,
    label_distribution,
    load_image_folder,
    load_medmnist_npz,
    shard_partition,
)
from jointly.errors import ConfigError, DataError

DIGITS = load_digits().target  # 1797 labels, 10 classes


def _covers_once(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))
    assert all(p.dtype == np.int64 for p in parts)


@pytest.mark.parametrize(
    "split",
    [
        lambda rng: iid_partition(DIGITS, 7, rng),
        lambda rng: iid_partition(len(DIGITS), 7, rng),
        lambda rng: dirichlet_partition(DIGITS, 7, 0.3, rng=rng, min_size=5),
        lambda rng: shard_partition(DIGITS, 7, shards_per_client=2, rng=rng),
    ],
)
def test_partitions_cover_every_index_once_and_are_seeded(
    split: Callable[[np.random.Generator], list[np.ndarray]],
) -> None:
    parts = split(np.random.default_rng(11))
    assert len(parts) == 7
    _covers_once(parts, len(DIGITS))
    again = split(np.random.default_rng(11))
    other = split(np.random.default_rng(12))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_iid_sizes_differ_by_at_most_one() -> None:
    sizes = [len(p) for p in iid_partition(1797, 10, 0)]
    assert max(sizes) - min(sizes) <= 1


def _skew(parts: list[np.ndarray]) -> float:
    """Mean total-variation distance between each client's label mix and the global one."""
    counts = label_distribution(parts, DIGITS, 10).astype(float)
    local = counts / counts.sum(axis=1, keepdims=True)
    global_ = np.bincount(DIGITS, minlength=10) / len(DIGITS)
    return float(np.mean(0.5 * np.abs(local - global_).sum(axis=1)))


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    skews = [
        np.mean([_skew(dirichlet_partition(DIGITS, 10, alpha, rng=seed, min_size=2)) for seed in range(3)])
        for alpha in (100.0, 1.0, 0.1)
    ]
    assert skews[0] < skews[1] < skews[2]
    assert skews[0] < 0.1 and skews[2] > 0.5
    iid = _skew(iid_partition(DIGITS, 10, 0))
    assert iid < skews[1]


def test_dirichlet_min_size_and_impossible_requests() -> None:
    parts = dirichlet_partition(DIGITS, 20, 0.5, rng=1, min_size=30)
    assert min(len(p) for p in parts) >= 30
    with pytest.raises(ConfigError, match="min_size"):
        dirichlet_partition(DIGITS, 10, 0.5, rng=1, min_size=500)
    with pytest.raises(ConfigError, match="tries"):
        dirichlet_partition(DIGITS, 50, 0.001, rng=1, min_size=30, max_tries=3)
    with pytest.raises(ConfigError, match="alpha"):
        dirichlet_partition(DIGITS, 10, 0.0, rng=1)


def test_shards_give_few_labels_per_client() -> None:
    parts = shard_partition(DIGITS, 10, shards_per_client=2, rng=3)
    labels_per_client = (label_distribution(parts, DIGITS, 10) > 0).sum(axis=1)
    assert labels_per_client.max() <= 4  # two shards, each spanning at most two labels


def test_partitioner_argument_errors() -> None:
    with pytest.raises(ConfigError, match="num_clients"):
        iid_partition(10, 0, 0)
    with pytest.raises(ConfigError, match="at least one row"):
        iid_partition(3, 4, 0)
    with pytest.raises(ConfigError, match="rng"):
        iid_partition(10, 2, "seed")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="integers"):
        dirichlet_partition(np.array([0.5, 1.0]), 2, 1.0, rng=0)
    with pytest.raises(DataError, match="non-negative"):
        shard_partition(np.array([-1, 0, 1, 2]), 2, shards_per_client=1, rng=0)


# -------------------------------------------------------------------------------------------- MedMNIST .npz


def _medmnist(tmp_path: Path, **override: object) -> Path:
    rng = np.random.default_rng(0)
    arrays: dict[str, object] = {}
    for split, n in (("train", 12), ("val", 4), ("test", 5)):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, size=(n, 1))
    arrays["train_labels"] = np.arange(12).reshape(12, 1) % 3
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "mini.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_load_medmnist(tmp_path: Path) -> None:
    splits = load_medmnist_npz(_medmnist(tmp_path))
    assert set(splits) == {"train", "val", "test"}
    assert splits["train"].images.shape == (12, 8, 8)
    assert splits["train"].labels.shape == (12,)
    assert len(splits["test"]) == 5
    rgb = load_medmnist_npz(
        _medmnist(
            tmp_path,
            **{f"{s}_images": np.zeros((n, 4, 4, 3), np.uint8) for s, n in (("train", 12), ("val", 4), ("test", 5))},
        )
    )
    assert rgb["val"].images.shape == (4, 4, 4, 3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"val_labels": None}, "missing array\\(s\\) val_labels"),
        ({"test_images": np.zeros((5, 8, 8), np.int32)}, "test_images: dtype int32"),
        ({"test_images": np.zeros((5, 64), np.uint8)}, "test_images: shape"),
        ({"val_images": np.zeros((4, 9, 9), np.uint8)}, "val_images have shape"),
        ({"val_labels": np.zeros((3, 1), np.int64)}, "3 labels for 4 images"),
        ({"val_labels": np.zeros((4, 1), np.float64)}, "val_labels: dtype float64"),
        ({"test_labels": np.full((5, 1), 7)}, "label 7 is out of range \\[0, 3\\)"),
        ({"train_labels": np.full((12, 1), -1)}, "negative label"),
        ({"train_images": np.full((12, 8, 8), np.nan)}, "NaN"),
    ],
)
def test_load_medmnist_refuses_bad_files(tmp_path: Path, override: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_medmnist_npz(_medmnist(tmp_path, **override))


def test_load_medmnist_num_classes_and_object_arrays(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="out of range \\[0, 2\\)"):
        load_medmnist_npz(_medmnist(tmp_path), num_classes=2)
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        train_images=np.array([{"a": 1}], dtype=object),
        train_labels=np.zeros(1, np.int64),
        val_images=np.zeros((1, 2, 2), np.uint8),
        val_labels=np.zeros(1, np.int64),
        test_images=np.zeros((1, 2, 2), np.uint8),
        test_labels=np.zeros(1, np.int64),
    )
    with pytest.raises(DataError, match="without pickle"):
        load_medmnist_npz(pickled)
    with pytest.raises(DataError, match="file not found"):
        load_medmnist_npz(tmp_path / "nope.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="readable"):
        load_medmnist_npz(garbage)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match=r"not an \.npz"):
        load_medmnist_npz(single)


# -------------------------------------------------------------------------------------------- image folder


def _folder(tmp_path: Path, rows: list[tuple[str, str]], shapes: dict[str, tuple[int, ...]]) -> Path:
    images = tmp_path / "img"
    images.mkdir(exist_ok=True)
    for name, shape in shapes.items():
        np.save(images / name, np.full(shape, 3, dtype=np.uint8))
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,diagnosis\n" + "".join(f"{a},{b}\n" for a, b in rows), encoding="utf-8")
    return csv_path


def test_load_image_folder_npy_and_text_labels(tmp_path: Path) -> None:
    csv_path = _folder(
        tmp_path,
        [("a.npy", "tumour"), ("b.npy", "healthy"), ("c.npy", "tumour")],
        {"a.npy": (4, 4), "b.npy": (4, 4), "c.npy": (4, 4)},
    )
    data = load_image_folder(tmp_path / "img", csv_path, image_column="file", label_column="diagnosis")
    assert data.images.shape == (3, 4, 4)
    assert data.classes == ("healthy", "tumour")
    np.testing.assert_array_equal(data.labels, [1, 0, 1])


def test_load_image_folder_resize_and_integer_labels(tmp_path: Path) -> None:
    csv_path = _folder(tmp_path, [("a.npy", "0"), ("b.npy", "2")], {"a.npy": (4, 6, 3), "b.npy": (8, 8, 3)})
    with pytest.raises(DataError, match="pass size"):
        load_image_folder(tmp_path / "img", csv_path, image_column="file", label_column="diagnosis")
    data = load_image_folder(tmp_path / "img", csv_path, image_column="file", label_column="diagnosis", size=(5, 5))
    assert data.images.shape == (2, 5, 5, 3) and data.classes is None
    np.testing.assert_array_equal(data.labels, [0, 2])


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([("a.npy", "0")], {"image_column": "path"}, "column 'path' not found"),
        ([("../evil.npy", "0")], {}, "leaves the image folder"),
        ([("missing.npy", "0")], {}, "not found"),
        ([("a.txt", "0")], {}, "unsupported image type"),
        ([("a.npy", "-3")], {}, "negative label"),
    ],
)
def test_load_image_folder_errors(
    tmp_path: Path, rows: list[tuple[str, str]], kwargs: dict[str, str], message: str
) -> None:
    csv_path = _folder(tmp_path, rows, {"a.npy": (2, 2)})
    (tmp_path / "img" / "a.txt").write_text("x")
    (tmp_path / "evil.npy").write_bytes(b"")
    args = {"image_column": "file", "label_column": "diagnosis", **kwargs}
    with pytest.raises(DataError, match=message):
        load_image_folder(tmp_path / "img", csv_path, **args)  # type: ignore[arg-type]


def test_png_and_jpeg_images_are_read_and_a_corrupt_one_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    csv_path = _folder(tmp_path, [("a.png", "tumour"), ("b.jpg", "healthy")], {})
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(gray).save(tmp_path / "img" / "a.png")
    Image.fromarray(gray).save(tmp_path / "img" / "b.jpg", quality=100)
    data = load_image_folder(tmp_path / "img", csv_path, image_column="file", label_column="diagnosis")
    assert data.images.shape == (2, 8, 8) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[0], gray)  # PNG is lossless
    assert np.abs(data.images[1].astype(int) - gray).max() <= 3  # JPEG nearly so at quality 100
    assert data.classes == ("healthy", "tumour")
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(DataError, match="cannot decode"):
        load_image_folder(tmp_path / "img", csv_path, image_column="file", label_column="diagnosis")
