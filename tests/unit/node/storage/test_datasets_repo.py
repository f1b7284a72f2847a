"""DatasetsRepo and inspect_table: a dataset is a name, a path and a schema; rows never enter the database."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from jointly.errors import ConfigError, Conflict, DataError, NotFound
from jointly.node.storage import Storage, inspect_table

COLUMNS = [{"name": "id", "dtype": "string"}, {"name": "x", "dtype": "double"}]


def test_add_get_list_remove(storage: Storage) -> None:
    added = storage.datasets.add(
        "credit", "/data/credit.csv", format="csv", id_column="id", columns=COLUMNS, rows=3, created_by="alice"
    )
    assert added.columns == tuple(COLUMNS)
    storage.datasets.add("bank", "/data/bank.parquet", format="parquet", id_column="id", columns=COLUMNS, rows=None)
    got = storage.datasets.get("credit")
    assert got is not None and got == added
    assert got.to_dict()["columns"] == COLUMNS and got.created_by == "alice" and got.rows == 3
    assert [d.name for d in storage.datasets.list()] == ["bank", "credit"]
    storage.datasets.remove("bank")
    assert storage.datasets.get("bank") is None
    with pytest.raises(NotFound):
        storage.datasets.remove("bank")


def test_duplicates_and_bad_input(storage: Storage) -> None:
    storage.datasets.add("d", "/p.csv", format="csv", id_column="id", columns=COLUMNS, rows=1)
    with pytest.raises(Conflict):
        storage.datasets.add("d", "/q.csv", format="csv", id_column="id", columns=COLUMNS, rows=1)
    with pytest.raises(ConfigError, match="id column 'key'"):
        storage.datasets.add("e", "/q.csv", format="csv", id_column="key", columns=COLUMNS, rows=1)
    with pytest.raises(ConfigError, match="invalid dataset name"):
        storage.datasets.add("", "/q.csv", format="csv", id_column="id", columns=COLUMNS, rows=1)


# ---------------------------------------------------------------- inspect_table


def test_inspect_csv(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,age,score,name\n007,31,0.5,ann\n008,40,1.5,bob\n009,22,2.0,cy\n")
    info = inspect_table(path, "id")
    assert info.format == "csv" and info.rows == 3
    assert info.columns == [
        {"name": "id", "dtype": "string"},
        {"name": "age", "dtype": "int64"},
        {"name": "score", "dtype": "double"},
        {"name": "name", "dtype": "string"},
    ]
    fmt, columns, rows = info  # unpacks as a (format, columns, rows) tuple
    assert (fmt, rows, columns[0]["name"]) == ("csv", 3, "id")


def test_inspect_csv_gz_with_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b'id,note\n1,"two\nlines"\n2,plain\n'))
    info = inspect_table(path, "id")
    assert (info.format, info.rows) == ("csv.gz", 2)


def test_inspect_parquet_reads_schema_and_row_count(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"uid": [1, 2, 3, 4], "f": [0.1, 0.2, 0.3, 0.4], "c": ["a", "b", "c", "d"]}).to_parquet(path)
    info = inspect_table(path, "uid")
    assert info.format == "parquet" and info.rows == 4
    assert [c["name"] for c in info.columns] == ["uid", "f", "c"]  # no pandas index column
    assert info.columns[0]["dtype"] == "int64" and info.columns[1]["dtype"] == "double"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.txt", b"id\n1\n", "unsupported file type"),
        ("t.csv", b"", "file is empty"),
        ("t.csv", b"id,x\n", "no data rows"),
        ("t.csv", b"key,x\n1,2\n", "id column 'id' not found; the columns are: 'key', 'x'"),
        ("t.csv", b"id,x,x\n1,2,3\n", "duplicate column name 'x'"),
        ("t.csv", b"id,x\n1,2\n3,4,5\n", "malformed CSV"),
        ("t.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
        ("t.csv.gz", b"not gzip at all", "cannot read the file"),
    ],
)
def test_inspect_refuses_bad_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        inspect_table(path, "id")
    assert info.value.path == str(path)


def test_inspect_refuses_missing_file_directory_and_parquet_without_id(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        inspect_table(tmp_path / "missing.csv", "id")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        inspect_table(tmp_path / "dir.csv", "id")
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(DataError, match="id column 'id' not found"):
        inspect_table(path, "id")
