"""Small synthetic demo tables shipped with jointly (package data in ``jointly/data/bundled/``).

A bank (``bank_customers.csv``) and a telco (``telco_subscribers.csv``) whose
customer lists overlap in exactly :data:`EXPECTED_OVERLAP` customers, keyed by
:data:`ID_COLUMN`.  The files were made once by :func:`generate_demo_tables`
and are committed; a unit test checks that regenerating them gives the same bytes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from jointly.data.io import atomic_write_bytes, atomic_write_text, write_table
from jointly.data.synthetic import customer_table, overlapping_ids

__all__ = [
    "BANK_COLUMNS",
    "BANK_ROWS",
    "DEMO_FILES",
    "DEMO_SEED",
    "EXPECTED_OVERLAP",
    "HORIZONTAL_CLIENTS",
    "ID_COLUMN",
    "QUERY_HITS",
    "TELCO_COLUMNS",
    "TELCO_ROWS",
    "VERTICAL_ID_COLUMN",
    "VERTICAL_LABEL",
    "bundled_bytes",
    "demo_horizontal_images",
    "demo_psi_tables",
    "demo_query_tables",
    "demo_vertical_tables",
    "generate_demo_tables",
]

#: the id column of both demo tables
ID_COLUMN = "customer_id"
#: how many customers the bank and the telco have in common
EXPECTED_OVERLAP = 600
BANK_ROWS = 2_000
TELCO_ROWS = 1_500
DEMO_SEED = 20_240_601
BANK_COLUMNS = ("age", "income", "balance")
TELCO_COLUMNS = ("monthly_spend", "tenure_months")
#: party name -> file name inside the package's ``bundled/`` directory
DEMO_FILES = {"bank": "bank_customers.csv", "telco": "telco_subscribers.csv"}


def bundled_bytes(name: str) -> bytes:
    """The bytes of one bundled file, e.g. ``bundled_bytes("bank_customers.csv")``."""
    if name not in DEMO_FILES.values():
        raise FileNotFoundError(f"no bundled file {name!r}; have {sorted(DEMO_FILES.values())}")
    return resources.files("jointly.data").joinpath("bundled", name).read_bytes()


def demo_psi_tables(directory: Path) -> dict[str, Path]:
    """Copy the two demo CSVs into ``directory`` (created if needed, files written atomically).

    Returns ``{"bank": path, "telco": path}``.  Existing files of the same name are replaced.
    """
    return {
        party: atomic_write_bytes(Path(directory) / name, bundled_bytes(name)) for party, name in DEMO_FILES.items()
    }


def generate_demo_tables(directory: Path, *, seed: int = DEMO_SEED) -> dict[str, Path]:
    """Regenerate the demo CSVs into ``directory``: how the bundled files were made.

    ``generate_demo_tables(Path("src/jointly/data/bundled"))`` rewrites the committed files.
    """
    bank_ids, telco_ids = overlapping_ids(BANK_ROWS, TELCO_ROWS, EXPECTED_OVERLAP, seed=seed)
    frames = {
        "bank": customer_table(bank_ids, seed=seed, columns=BANK_COLUMNS, id_column=ID_COLUMN),
        "telco": customer_table(telco_ids, seed=seed + 1, columns=TELCO_COLUMNS, id_column=ID_COLUMN),
    }
    out: dict[str, Path] = {}
    for party, frame in frames.items():
        text = frame.to_csv(index=False, lineterminator="\n")
        out[party] = atomic_write_text(Path(directory) / DEMO_FILES[party], text)
    return out


# -- vertical demo: a hospital and a laboratory ---------------------------------------------
VERTICAL_ID_COLUMN = "patient_id"
VERTICAL_LABEL = "malignant"
VERTICAL_SHARE = 0.94  # each party holds this fraction of the patients, so PSI has work to do


def demo_vertical_tables(directory: Path, *, seed: int = DEMO_SEED) -> dict[str, Path]:
    """A vertical split of scikit-learn's bundled breast-cancer set (569 patients, 30 features).

    The ``hospital`` (the guest) holds the diagnosis (``malignant``: 1 or 0) and the ten
    "mean" measurements; the ``lab`` (a host) holds the twenty "error" and "worst"
    measurements.  Each holds about 94% of the patients, a different 94%, so the
    job's PSI step aligns the roughly 88% they share.  Nothing is downloaded.
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    frame = pd.DataFrame(data.data, columns=names)
    ids = [f"P{100000 + i}" for i in range(len(frame))]
    frame.insert(0, VERTICAL_ID_COLUMN, ids)
    malignant = (data.target == 0).astype(int)  # sklearn codes malignant as 0
    rng = np.random.default_rng(seed)
    keep = round(VERTICAL_SHARE * len(frame))
    hospital_rows = np.sort(rng.permutation(len(frame))[:keep])
    lab_rows = np.sort(rng.permutation(len(frame))[:keep])
    mean_cols = [n for n in names if n.startswith("mean_")]
    other_cols = [n for n in names if n not in mean_cols]
    hospital = frame.iloc[hospital_rows][[VERTICAL_ID_COLUMN, *mean_cols]].copy()
    hospital.insert(1, VERTICAL_LABEL, malignant[hospital_rows])
    lab = frame.iloc[lab_rows][[VERTICAL_ID_COLUMN, *other_cols]]
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"hospital": directory / "hospital_patients.csv", "lab": directory / "lab_results.csv"}
    write_table(hospital.sample(frac=1.0, random_state=seed), paths["hospital"])
    write_table(lab.sample(frac=1.0, random_state=seed + 1), paths["lab"])
    return paths


HORIZONTAL_CLIENTS = ("clinic-a", "clinic-b", "clinic-c")
HORIZONTAL_TEST_ROWS = 360


def demo_horizontal_images(
    directory: Path, clients: tuple[str, ...] = HORIZONTAL_CLIENTS, *, seed: int = DEMO_SEED, alpha: float | None = None
) -> dict[str, Path]:
    """scikit-learn's bundled digits (1,797 8x8 images, 10 classes) split among ``clients``.

    Each client gets a MedMNIST-style ``.npz`` (``train_*``, an empty ``val_*``, ``test_*``;
    uint8 images) with its share of the training images and of 360 held-out test images,
    IID by default or with Dirichlet(``alpha``) label skew.  Nothing is downloaded.
    """
    from sklearn.datasets import load_digits

    from jointly.data.federated import dirichlet_partition, iid_partition

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:HORIZONTAL_TEST_ROWS], order[HORIZONTAL_TEST_ROWS:]
    if alpha is None:
        parts = iid_partition(len(train), len(clients), seed)
        tparts = iid_partition(len(test), len(clients), seed + 1)
    else:
        parts = dirichlet_partition(labels[train], len(clients), alpha, rng=seed)
        tparts = dirichlet_partition(labels[test], len(clients), alpha, rng=seed + 1)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, p, q in zip(clients, parts, tparts, strict=True):
        tr, te = train[p], test[q]
        path = directory / f"{name}.npz"
        with path.open("wb") as fh:
            np.savez(
                fh,
                train_images=images[tr],
                train_labels=labels[tr],
                val_images=images[tr[:0]],
                val_labels=labels[tr[:0]],
                test_images=images[te],
                test_labels=labels[te],
            )
        paths[name] = path
    return paths


BLACKLIST_ROWS = 20_000
QUERY_ROWS = 1_000
QUERY_HITS = 37
REASONS = ("fraud", "aml-watch", "sanctions", "chargeback", "identity-theft")


def demo_query_tables(directory: Path, *, seed: int = DEMO_SEED) -> dict[str, Path]:
    """A credit bureau's blacklist (20,000 ids, each with a reason code) and a bank's 1,000 applicants,
    :data:`QUERY_HITS` of whom are on the list: the data of the blacklist-query demo (generated, not shipped)."""
    listed, asked = overlapping_ids(BLACKLIST_ROWS, QUERY_ROWS, QUERY_HITS, seed=seed + 7)
    rng = np.random.default_rng(seed + 8)
    bureau = pd.DataFrame(
        {ID_COLUMN: listed, "reason": np.asarray(REASONS)[rng.integers(0, len(REASONS), len(listed))]}
    )
    bank = pd.DataFrame({ID_COLUMN: asked})
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"bureau": directory / "blacklist.csv", "bank": directory / "applicants.csv"}
    write_table(bureau, paths["bureau"])
    write_table(bank, paths["bank"])
    return paths
