"""Split a data set across simulated federated clients, and load image data sets for horizontal FL.

Partitioners return one sorted ``int64`` index array per client; together they cover every index
exactly once.  All take an explicit ``rng`` (a ``numpy.random.Generator`` or an integer seed) so a
simulation is reproducible.

* :func:`iid_partition` -- a random, near-equal split.
* :func:`dirichlet_partition` -- label skew: each class is spread over the clients with
  proportions drawn from ``Dirichlet(alpha)`` (Hsu, Qi, Brown 2019; the NIID-Bench variant that
  stops giving a client more of a class once it holds ``n / num_clients`` rows).  Small ``alpha``
  means each client sees few classes; large ``alpha`` approaches IID.
* :func:`shard_partition` -- McMahan et al. 2017: sort by label, cut into
  ``num_clients * shards_per_client`` shards, deal each client ``shards_per_client`` shards.
* :func:`label_distribution` -- clients x classes count matrix, to report the skew.

Loaders (no pickles, strict validation, :class:`~jointly.errors.DataError` naming file and problem):

* :func:`load_medmnist_npz` -- MedMNIST-style ``.npz`` with ``{train,val,test}_{images,labels}``.
* :func:`load_image_folder` -- a folder of images plus a CSV naming each file and its label.
  ``.npy`` images always work; PNG/JPEG need Pillow, which is optional (not a jointly dependency):
  without it such files are refused with a message saying so.

This layer imports nothing from jointly except :mod:`jointly.errors`.
"""

from __future__ import annotations

import csv
import importlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jointly.errors import ConfigError, DataError

__all__ = [
    "MEDMNIST_SPLITS",
    "ImageSplit",
    "dirichlet_partition",
    "iid_partition",
    "label_distribution",
    "load_image_folder",
    "load_medmnist_npz",
    "shard_partition",
]

RngLike = np.random.Generator | int
MEDMNIST_SPLITS = ("train", "val", "test")
_NPY_SUFFIXES = (".npy",)
_PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")


# ----------------------------------------------------------------------------------------------- partitioners


def _rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__}")


def _check_clients(num_clients: int, n: int) -> None:
    if isinstance(num_clients, bool) or not isinstance(num_clients, int | np.integer) or num_clients < 1:
        raise ConfigError(f"num_clients must be a positive integer, got {num_clients!r}")
    if num_clients > n:
        raise ConfigError(f"cannot split {n} rows over {num_clients} clients: every client needs at least one row")


def _labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError("<labels>", f"labels must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError("<labels>", f"labels must be integers, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise DataError("<labels>", f"labels must be non-negative, found {int(arr.min())}")
    return arr.astype(np.int64)


def iid_partition(labels_or_n: int | Sequence[int] | np.ndarray, num_clients: int, rng: RngLike) -> list[np.ndarray]:
    """Shuffle ``range(n)`` and cut it into ``num_clients`` parts whose sizes differ by at most one."""
    if isinstance(labels_or_n, bool):
        raise ConfigError("labels_or_n must be a row count or a label array, got a bool")
    n = int(labels_or_n) if isinstance(labels_or_n, int | np.integer) else len(_labels(labels_or_n))
    _check_clients(num_clients, n)
    perm = _rng(rng).permutation(n)
    return [np.sort(part).astype(np.int64) for part in np.array_split(perm, num_clients)]


def dirichlet_partition(
    labels: Sequence[int] | np.ndarray,
    num_clients: int,
    alpha: float,
    *,
    rng: RngLike,
    min_size: int = 1,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Label-skewed split: class ``k``'s rows go to clients in ``Dirichlet(alpha)`` proportions.

    Redraws until every client has at least ``min_size`` rows; raises ``ConfigError`` after
    ``max_tries`` draws (``alpha`` too small or ``min_size`` too large for the data).
    """
    y = _labels(labels)
    n = len(y)
    _check_clients(num_clients, n)
    if not alpha > 0 or not np.isfinite(alpha):
        raise ConfigError(f"alpha must be a positive number, got {alpha}")
    if min_size < 0 or min_size * num_clients > n:
        raise ConfigError(f"min_size={min_size} is impossible with {n} rows and {num_clients} clients")
    gen = _rng(rng)
    by_class = [np.flatnonzero(y == k) for k in np.unique(y)]
    cap = n / num_clients
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        sizes = np.zeros(num_clients, dtype=np.int64)
        for members in by_class:
            idx = gen.permutation(members)
            p = gen.dirichlet(np.full(num_clients, alpha))
            p = np.where(sizes < cap, p, 0.0)
            p = p / p.sum() if p.sum() > 0 else np.full(num_clients, 1.0 / num_clients)
            cuts = (np.cumsum(p) * len(idx)).astype(np.int64)[:-1]
            for c, piece in enumerate(np.split(idx, cuts)):
                parts[c].append(piece)
                sizes[c] += len(piece)
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
    raise ConfigError(
        f"no Dirichlet(alpha={alpha}) split gave every one of {num_clients} clients at least {min_size} rows "
        f"in {max_tries} tries; raise alpha or lower min_size"
    )


def shard_partition(
    labels: Sequence[int] | np.ndarray, num_clients: int, *, shards_per_client: int, rng: RngLike
) -> list[np.ndarray]:
    """Pathological non-IID split of McMahan et al. 2017: each client gets ``shards_per_client`` label-sorted shards."""
    y = _labels(labels)
    if shards_per_client < 1:
        raise ConfigError(f"shards_per_client must be at least 1, got {shards_per_client}")
    _check_clients(num_clients, len(y))
    num_shards = num_clients * shards_per_client
    if num_shards > len(y):
        raise ConfigError(f"{num_shards} shards need at least as many rows, got {len(y)}")
    gen = _rng(rng)
    # a random tie-break inside each label so shards of one label are not always the same rows
    order = np.lexsort((gen.permutation(len(y)), y))
    shards = np.array_split(order, num_shards)
    deal = gen.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])).astype(np.int64) for row in deal]


def label_distribution(
    parts: Sequence[np.ndarray], labels: Sequence[int] | np.ndarray, num_classes: int | None = None
) -> np.ndarray:
    """Clients x classes matrix of label counts."""
    y = _labels(labels)
    k = num_classes if num_classes is not None else (int(y.max()) + 1 if y.size else 0)
    return np.stack([np.bincount(y[np.asarray(p, dtype=np.int64)], minlength=k) for p in parts])


# ----------------------------------------------------------------------------------------------- loaders


@dataclass(frozen=True)
class ImageSplit:
    """Images ``(n, h, w)`` or ``(n, h, w, c)`` and labels ``(n,)`` (``(n, L)`` for multi-label data).

    ``classes`` names the label values when they were read as text (label ``i`` is ``classes[i]``).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_medmnist_npz(path: str | Path, *, num_classes: int | None = None) -> dict[str, ImageSplit]:
    """Read a MedMNIST-style ``.npz``: ``train``, ``val`` and ``test`` splits, each ``*_images`` + ``*_labels``.

    Checks: the keys are there; images are ``uint8`` or floating, of shape ``(n, h, w)`` or
    ``(n, h, w, c)`` with ``c`` in 1, 3 or 4, the same ``h, w, c`` in every split; labels are
    integers of shape ``(n,)``, ``(n, 1)`` (returned flattened) or ``(n, L)`` (multi-label, 0/1);
    counts match; labels lie in ``[0, num_classes)`` (default: the range seen in ``train``).
    Pickled (object) arrays are refused.
    """
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise DataError(where, "file not found" if not p.exists() else "not a regular file")
    arrays: dict[str, np.ndarray] = {}
    try:
        loaded = np.load(p, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(where, "not an .npz archive (a single .npy array?)")
        with loaded as z:
            missing = [
                f"{s}_{kind}" for s in MEDMNIST_SPLITS for kind in ("images", "labels") if f"{s}_{kind}" not in z
            ]
            if missing:
                raise DataError(
                    where, f"missing array(s) {', '.join(missing)}; the file has: {', '.join(sorted(z.files))}"
                )
            for s in MEDMNIST_SPLITS:
                for kind in ("images", "labels"):
                    key = f"{s}_{kind}"
                    try:
                        arrays[key] = z[key]
                    except ValueError as exc:  # object arrays need pickle: refused
                        raise DataError(where, f"{key}: cannot be read without pickle ({exc})") from None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(where, f"not a readable .npz archive ({exc})") from None

    out: dict[str, ImageSplit] = {}
    ref_shape: tuple[int, ...] | None = None
    for s in MEDMNIST_SPLITS:
        images = _check_images(where, f"{s}_images", arrays[f"{s}_images"])
        labels = _check_labels(where, f"{s}_labels", arrays[f"{s}_labels"], len(images))
        if ref_shape is None:
            ref_shape = images.shape[1:]
            if len(images) == 0:
                raise DataError(where, "train_images is empty")
        elif images.shape[1:] != ref_shape:
            raise DataError(where, f"{s}_images have shape {images.shape[1:]} per image, train has {ref_shape}")
        out[s] = ImageSplit(images, labels)
    width = {v.labels.shape[1] if v.labels.ndim == 2 else None for v in out.values()}
    if len(width) != 1:
        raise DataError(where, "the splits disagree on single-label vs multi-label (or on the number of labels)")
    if num_classes is None and out["train"].labels.ndim == 1:
        num_classes = int(out["train"].labels.max()) + 1
    for s, split in out.items():
        y = split.labels
        if y.ndim == 2:
            if y.size and not np.isin(y, (0, 1)).all():
                raise DataError(where, f"{s}_labels: multi-label values must be 0 or 1")
        elif num_classes is not None and y.size and (y.min() < 0 or y.max() >= num_classes):
            bad = int(y[(y < 0) | (y >= num_classes)][0])
            raise DataError(where, f"{s}_labels: label {bad} is out of range [0, {num_classes})")
    return out


def _check_images(where: str, key: str, images: np.ndarray) -> np.ndarray:
    if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise DataError(where, f"{key}: dtype {images.dtype}, expected uint8 or floating point")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
        raise DataError(where, f"{key}: shape {images.shape}, expected (n, h, w) or (n, h, w, c) with c in 1, 3, 4")
    if np.issubdtype(images.dtype, np.floating) and images.size and not np.isfinite(images).all():
        raise DataError(where, f"{key}: contains NaN or infinite values")
    return images


def _check_labels(where: str, key: str, labels: np.ndarray, n: int) -> np.ndarray:
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(where, f"{key}: dtype {labels.dtype}, expected integers")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2):
        raise DataError(where, f"{key}: shape {labels.shape}, expected (n,), (n, 1) or (n, L)")
    if labels.shape[0] != n:
        raise DataError(where, f"{key}: {labels.shape[0]} labels for {n} images")
    if labels.size and labels.min() < 0:
        raise DataError(where, f"{key}: negative label {int(labels.min())}")
    return labels.astype(np.int64)


def _pillow() -> Any | None:
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:
        return None


def _resize_nearest(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = img.shape[:2]
    rows = (np.arange(size[0]) * h // size[0]).astype(np.int64)
    cols = (np.arange(size[1]) * w // size[1]).astype(np.int64)
    out: np.ndarray = img[rows][:, cols]
    return out


def load_image_folder(
    folder: str | Path,
    labels_csv: str | Path,
    *,
    image_column: str = "image",
    label_column: str = "label",
    size: tuple[int, int] | None = None,
) -> ImageSplit:
    """Read the images named in ``labels_csv`` (paths relative to ``folder``) with their labels.

    Each file is a ``.npy`` array (2-D, or 3-D with channels last; loaded without pickle) or, if
    Pillow is installed, a PNG/JPEG.  Paths must stay inside ``folder``.  With ``size=(h, w)``
    every image is resized by nearest-neighbour sampling; otherwise all images must already share
    one shape.  Integer labels are kept; any other label text is mapped to ``0..k-1`` in sorted
    order and the names are returned in ``classes``.
    """
    root = Path(folder)
    csv_path = Path(labels_csv)
    if not root.is_dir():
        raise DataError(str(root), "image folder not found")
    if not csv_path.is_file():
        raise DataError(str(csv_path), "labels CSV not found")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"size must be (height, width) with positive entries, got {size}")
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for col in (image_column, label_column):
                if col not in header:
                    raise DataError(
                        str(csv_path), f"column {col!r} not found; the columns are: {', '.join(header)}", row=1
                    )
            rows = [(i + 2, r[image_column], r[label_column]) for i, r in enumerate(reader)]
    except UnicodeDecodeError as exc:
        raise DataError(str(csv_path), f"not UTF-8 text ({exc})") from None
    if not rows:
        raise DataError(str(csv_path), "no data rows")

    resolved_root = root.resolve()
    pil = _pillow()
    images: list[np.ndarray] = []
    for line, name, _ in rows:
        if not name:
            raise DataError(str(csv_path), f"empty {image_column!r}", row=line)
        file = (root / name).resolve()
        if not file.is_relative_to(resolved_root):
            raise DataError(str(csv_path), f"image path {name!r} leaves the image folder", row=line)
        img = _read_image(file, pil, str(csv_path), line)
        if size is not None:
            img = _resize_nearest(img, size)
        if images and img.shape != images[0].shape:
            raise DataError(
                str(file), f"shape {img.shape} differs from the first image's {images[0].shape}; pass size=(h, w)"
            )
        images.append(img)

    raw = [label.strip() for _, _, label in rows]
    classes: tuple[str, ...] | None = None
    try:
        labels = np.array([int(v) for v in raw], dtype=np.int64)
    except ValueError:
        classes = tuple(sorted(set(raw)))
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.array([lookup[v] for v in raw], dtype=np.int64)
    if labels.min() < 0:
        line = rows[int(np.argmin(labels))][0]
        raise DataError(str(csv_path), f"negative label {int(labels.min())}", row=line)
    return ImageSplit(np.stack(images), labels, classes)


def _read_image(file: Path, pil: Any | None, csv_name: str, line: int) -> np.ndarray:
    if not file.is_file():
        raise DataError(csv_name, f"image file {file.name!r} not found", row=line)
    suffix = file.suffix.lower()
    img: np.ndarray
    if suffix in _NPY_SUFFIXES:
        try:
            img = np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(str(file), f"not a readable .npy array without pickle ({exc})") from None
    elif suffix in _PILLOW_SUFFIXES:
        if pil is None:
            raise DataError(
                str(file), "PNG/JPEG images need Pillow, which is not installed; install it or convert to .npy"
            )
        try:
            with pil.open(file) as im:
                img = np.asarray(im)
        except (OSError, ValueError) as exc:
            raise DataError(str(file), f"cannot decode image ({exc})") from None
    else:
        supported = ", ".join(_NPY_SUFFIXES + _PILLOW_SUFFIXES)
        raise DataError(str(file), f"unsupported image type {suffix!r}; expected one of {supported}")
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise DataError(str(file), "an image must be a 2-D array or a 3-D array with channels last")
    if not (img.dtype == np.uint8 or np.issubdtype(img.dtype, np.floating)):
        raise DataError(str(file), f"image dtype {img.dtype}, expected uint8 or floating point")
    return img
