"""Synthetic generators (exact overlap, determinism) and the bundled demo tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jointly.data import bundled
from jointly.data.bundled import DEMO_FILES, EXPECTED_OVERLAP, ID_COLUMN, demo_psi_tables, generate_demo_tables
from jointly.data.synthetic import COLUMN_GENERATORS, customer_table, format_customer_id, overlapping_ids
from jointly.data.tables import load_table
from jointly.errors import ConfigError


@pytest.mark.parametrize(("n_a", "n_b", "overlap"), [(10, 7, 3), (5, 5, 5), (4, 6, 0), (0, 3, 0), (1, 1, 1)])
def test_exact_sizes_and_overlap(n_a: int, n_b: int, overlap: int) -> None:
    a, b = overlapping_ids(n_a, n_b, overlap, seed=7)
    assert len(a) == len(set(a)) == n_a
    assert len(b) == len(set(b)) == n_b
    assert len(set(a) & set(b)) == overlap


def test_100k_by_100k_exact_overlap_and_shuffled() -> None:
    a, b = overlapping_ids(100_000, 80_000, 25_000, seed=1)
    assert len(set(a)) == 100_000 and len(set(b)) == 80_000
    shared = set(a) & set(b)
    assert len(shared) == 25_000
    # shuffled: the shared ids are spread over the list, not packed at the front
    positions = [i for i, x in enumerate(a) if x in shared]
    assert np.mean(positions) == pytest.approx(50_000, rel=0.05)


def test_string_ids_look_like_customer_numbers() -> None:
    a, b = overlapping_ids(50, 50, 10, seed=3)
    for x in a + b:
        assert isinstance(x, str) and len(x) == 11 and x[0] == "C" and x[1:].isdigit()
    assert format_customer_id(123456) == "C0000123456"


def test_int_ids_are_the_same_numbers() -> None:
    s, _ = overlapping_ids(20, 5, 2, seed=9)
    i, _ = overlapping_ids(20, 5, 2, seed=9, kind="int")
    assert all(type(x) is int and x > 0 for x in i)
    assert [format_customer_id(x) for x in i] == s


def test_deterministic_by_seed() -> None:
    assert overlapping_ids(1000, 800, 300, seed=5) == overlapping_ids(1000, 800, 300, seed=5)
    assert overlapping_ids(1000, 800, 300, seed=5) != overlapping_ids(1000, 800, 300, seed=6)
    ids = [f"x{i}" for i in range(100)]
    one = customer_table(ids, seed=2)
    assert one.equals(customer_table(ids, seed=2))
    assert not one.equals(customer_table(ids, seed=3))


@pytest.mark.parametrize(("n_a", "n_b", "overlap"), [(3, 4, 5), (-1, 2, 0), (2, 2, -1)])
def test_bad_sizes(n_a: int, n_b: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        overlapping_ids(n_a, n_b, overlap)


def test_customer_table_columns() -> None:
    ids = overlapping_ids(500, 1, 0, seed=0)[0]
    frame = customer_table(ids, seed=4, columns=("age", "income", "balance", "tenure_months"))
    assert list(frame.columns) == ["customer_id", "age", "income", "balance", "tenure_months"]
    assert frame["customer_id"].tolist() == ids
    assert frame["age"].between(18, 90).all() and frame["income"].gt(0).all()
    # each column has its own stream: asking for fewer columns does not change the others
    assert frame["income"].equals(customer_table(ids, seed=4, columns=("income",))["income"])
    everything = customer_table(ids, columns=tuple(COLUMN_GENERATORS), id_column="cid")
    assert everything.notna().all().all()
    with pytest.raises(ConfigError, match="unknown column"):
        customer_table(ids, columns=("shoe_size",))
    with pytest.raises(ConfigError):
        customer_table(ids, columns=("age", "age"))


# ------------------------------------------------------------------ bundled demo data


def test_bundled_tables_load_and_overlap(tmp_path: Path) -> None:
    paths = demo_psi_tables(tmp_path / "data")
    assert set(paths) == {"bank", "telco"}
    tables = {party: load_table(path, id_column=ID_COLUMN) for party, path in paths.items()}
    assert len(tables["bank"]) == bundled.BANK_ROWS and len(tables["telco"]) == bundled.TELCO_ROWS
    assert tables["bank"].columns == list(bundled.BANK_COLUMNS)
    assert tables["telco"].columns == list(bundled.TELCO_COLUMNS)
    assert len(set(tables["bank"].ids) & set(tables["telco"].ids)) == EXPECTED_OVERLAP
    for path in paths.values():
        assert path.stat().st_size < 100_000


def test_bundled_files_are_what_the_documented_generator_makes(tmp_path: Path) -> None:
    regenerated = generate_demo_tables(tmp_path)
    for party, name in DEMO_FILES.items():
        assert regenerated[party].read_bytes() == bundled.bundled_bytes(name), (
            f"{name} differs from generate_demo_tables(); regenerate it (see jointly/data/bundled/README.md)"
        )


def test_demo_psi_tables_replaces_existing_copies(tmp_path: Path) -> None:
    (tmp_path / DEMO_FILES["bank"]).write_text("stale")
    paths = demo_psi_tables(tmp_path)
    assert paths["bank"].read_bytes() == bundled.bundled_bytes(DEMO_FILES["bank"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DEMO_FILES.values())
