"""load_table: good files load; each kind of bad file gives a DataError with the right row and problem."""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jointly.data.tables import Table, load_table, table_format
from jointly.errors import DataError


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def refuse(path: Path, *, columns: Sequence[str] | None = None) -> DataError:
    with pytest.raises(DataError) as info:
        load_table(path, columns=columns)
    err = info.value
    assert err.path == str(path)
    assert str(path) in str(err) and err.problem in str(err)
    if err.row is not None:
        assert f"row {err.row}" in str(err)
    return err


# ------------------------------------------------------------------ good files


def test_csv_ids_are_strings_exactly_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "id,age,city\n007,31,Oslo\n42,45,Bergen\n 9 ,50,Tromsø\n")
    table = load_table(path)
    assert isinstance(table, Table)
    assert table.ids == ["007", "42", " 9 "]
    assert table.columns == ["age", "city"]
    assert len(table) == 3
    assert table.path == path and table.id_column == "id"
    assert list(table.frame.columns) == ["id", "age", "city"]
    assert table.frame["age"].tolist() == [31, 45, 50]
    assert table.frame["city"].tolist() == ["Oslo", "Bergen", "Tromsø"]


def test_csv_quoted_fields_with_commas_and_newlines(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'id,note\n1,"a, b"\n2,"line one\nline two"\n"3,x","say ""hi"""\n')
    table = load_table(path)
    assert table.ids == ["1", "2", "3,x"]
    assert table.frame["note"].tolist() == ["a, b", "line one\nline two", 'say "hi"']


def test_csv_bom_crlf_and_blank_lines_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "w.csv", b"\xef\xbb\xbfid,v\r\n1,2\r\n\r\n3,4\r\n")
    table = load_table(path)
    assert table.ids == ["1", "3"]
    assert table.frame["v"].tolist() == [2, 4]


def test_csv_gz_and_custom_id_column(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv.gz", gzip.compress(b"x,customer_id\n1.5,C1\n2.5,C2\n"))
    table = load_table(path, id_column="customer_id")
    assert table.ids == ["C1", "C2"]
    assert table.columns == ["x"]


def test_column_selection(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "a,id,b,c\n1,x,2,3\n4,y,5,6\n")
    assert load_table(path, columns=["c", "a"]).columns == ["c", "a"]
    only_ids = load_table(path, columns=[])
    assert only_ids.columns == [] and only_ids.ids == ["x", "y"]
    assert load_table(path, columns=["id", "b", "b"]).columns == ["b"]
    assert load_table(path).columns == ["a", "b", "c"]


def test_parquet_keeps_int_and_str_ids(tmp_path: Path) -> None:
    ints = tmp_path / "i.parquet"
    pd.DataFrame({"id": np.array([5, 3, 9], dtype=np.int64), "f": [0.1, 0.2, 0.3]}).to_parquet(ints, index=False)
    table = load_table(ints)
    assert table.ids == [5, 3, 9] and all(type(i) is int for i in table.ids)
    assert table.columns == ["f"]
    strs = tmp_path / "s.pq"
    pd.DataFrame({"f": [1, 2], "id": ["007", "b"]}).to_parquet(strs)  # with a pandas index in the metadata
    table = load_table(strs)
    assert table.ids == ["007", "b"]
    assert table.columns == ["f"]
    assert load_table(strs, columns=[]).columns == []


def test_parquet_categorical_ids_and_stored_index_column(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    frame = pd.DataFrame({"id": pd.Categorical(["a", "b"]), "v": [1, 2]}, index=pd.Index([10, 20], name=None))
    frame.to_parquet(path)  # non-default index stored as __index_level_0__
    table = load_table(path)
    assert table.ids == ["a", "b"]
    assert table.columns == ["v"]


def test_table_format() -> None:
    assert table_format("a/B.CSV") == "csv"
    assert table_format("b.csv.gz") == "csv.gz"
    assert table_format("c.pq") == "parquet"
    with pytest.raises(DataError, match="unsupported file type"):
        table_format("d.xlsx")


# ------------------------------------------------------------------ bad files: the file itself


def test_missing_file(tmp_path: Path) -> None:
    err = refuse(tmp_path / "nope.csv")
    assert err.row is None and "not found" in err.problem


def test_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    err = refuse(tmp_path / "d.csv")
    assert err.row is None and "not a regular file" in err.problem and "directory" in err.problem


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f.csv")
    assert "not a regular file" in refuse(tmp_path / "f.csv").problem


def test_unsupported_extension(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "t.xlsx", "id\n1\n"))
    assert err.row is None and "unsupported file type" in err.problem and ".xlsx" in err.problem


@pytest.mark.parametrize("name", ["e.csv", "e.parquet", "e.csv.gz"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    err = refuse(write(tmp_path, name, b""))
    assert err.row is None and "empty" in err.problem and "0 bytes" in err.problem


def test_empty_after_decompression_or_only_blank_lines(tmp_path: Path) -> None:
    assert "empty" in refuse(write(tmp_path, "z.csv.gz", gzip.compress(b""))).problem
    assert "empty" in refuse(write(tmp_path, "b.csv", "\n\r\n\n")).problem


def test_header_only_csv(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "h.csv", "id,age\n"))
    assert err.row is None and "no data rows" in err.problem


def test_header_only_parquet(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    pd.DataFrame({"id": pd.Series([], dtype="int64")}).to_parquet(path)
    assert "no data rows" in refuse(path).problem


def test_not_really_parquet_or_gzip(tmp_path: Path) -> None:
    assert "Parquet" in refuse(write(tmp_path, "x.parquet", "id\n1\n")).problem
    assert "gzip" in refuse(write(tmp_path, "x.csv.gz", "id\n1\n")).problem


# ------------------------------------------------------------------ bad files: encoding and shape


def test_non_utf8_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = write(tmp_path, "l1.csv", b"id,city\n1,Oslo\n2,Troms\xf8\n3,K\xf8ge\n")
    err = refuse(path)
    assert err.row == 3
    assert "UTF-8" in err.problem and "f8" in err.problem


def test_non_utf8_in_header_and_in_gzip(tmp_path: Path) -> None:
    assert refuse(write(tmp_path, "h.csv", b"id,\xff\n1,2\n")).row == 1
    assert refuse(write(tmp_path, "g.csv.gz", gzip.compress(b"id\n1\n2\n\xc3(\n"))).row == 4


def test_non_utf8_across_a_chunk_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jointly.data.tables as tables

    monkeypatch.setattr(tables, "_CHUNK_BYTES", 7)
    # a valid 2-byte character split by the chunk boundary, then a bad byte later
    path = write(tmp_path, "c.csv", "id,v\n1,é\n2,ü\n".encode() + b"3,\xe9\n")
    assert refuse(path).row == 4
    assert load_table(write(tmp_path, "ok.csv", "id,v\n1,éé\n2,üü\n")).ids == ["1", "2"]


def test_short_row_is_not_silently_padded(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "s.csv", "id,a,b\n1,2,3\n\n2,3\n4,5,6\n"))
    assert err.row == 4  # blank line 3 counts
    assert "2 fields" in err.problem and "header has 3" in err.problem


def test_long_row(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "l.csv", 'id,a\n1,"x\ny"\n2,3,4\n'))
    assert err.row == 4  # the quoted newline makes record 1 span lines 2-3
    assert "3 fields" in err.problem and "header has 2" in err.problem


def test_ragged_row_also_caught_when_only_ids_are_requested(tmp_path: Path) -> None:
    assert refuse(write(tmp_path, "r.csv", "id,a\n1,2\n3\n"), columns=[]).row == 3


def test_unterminated_quote(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "u.csv", 'id,a\n1,2\n3,"oops\n4,5\n'))
    assert err.row == 3 and "unterminated quoted field" in err.problem
    # a stray quote inside an unquoted value is just a character
    assert load_table(write(tmp_path, "in.csv", 'id,a\n1,5"\n2,3\n')).frame["a"].tolist() == ['5"', "3"]


# ------------------------------------------------------------------ bad files: columns and ids


def test_missing_id_column_lists_the_columns(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "m.csv", "ID,age\n1,2\n"))
    assert err.row == 1  # the header line
    assert "'id'" in err.problem and "not found" in err.problem and "'ID', 'age'" in err.problem


def test_missing_id_column_parquet(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pd.DataFrame({"key": [1], "age": [2]}).to_parquet(path)
    err = refuse(path)
    assert err.row is None and "'key', 'age'" in err.problem


def test_requested_columns_that_do_not_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id,age\n1,2\n")
    err = refuse(path, columns=["age", "income", "zip"])
    assert err.row == 1
    assert "'income', 'zip'" in err.problem and "not found" in err.problem and "'id', 'age'" in err.problem
    pq_path = tmp_path / "c.parquet"
    pd.DataFrame({"id": [1], "age": [2]}).to_parquet(pq_path)
    assert "'income'" in refuse(pq_path, columns=["income"]).problem


def test_duplicate_column_names(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "d.csv", "id,a,a\n1,2,3\n"))
    assert err.row == 1 and "duplicate column name 'a'" in err.problem


def test_duplicate_ids_name_the_second_occurrence(tmp_path: Path) -> None:
    err = refuse(write(tmp_path, "d.csv", 'id,a\nx,1\ny,"two\nlines"\nz,3\ny,4\nx,5\n'))
    assert err.row == 6
    assert "duplicate id 'y'" in err.problem and "first seen on row 3" in err.problem


def test_ids_differing_only_in_leading_zeros_are_distinct_in_csv(tmp_path: Path) -> None:
    assert load_table(write(tmp_path, "z.csv", "id\n7\n07\n007\n")).ids == ["7", "07", "007"]


def test_duplicate_ids_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"id": [10, 11, 12, 11]}).to_parquet(path)
    err = refuse(path)
    assert err.row == 4 and "duplicate id 11" in err.problem and "first seen at row 2" in err.problem


@pytest.mark.parametrize(
    ("body", "row", "words"),
    [
        ("1,a\n\n,b\n", 4, "empty id"),
        ("1,a\n  ,b\n", 3, "empty id"),
        ('1,a\n"",b\n', 3, "empty id"),
        ("1,a\n2,b\nNaN,c\n", 4, "missing id ('NaN')"),
        ("1,a\nnan,b\n", 3, "missing id ('nan')"),
    ],
)
def test_empty_or_nan_ids_csv(tmp_path: Path, body: str, row: int, words: str) -> None:
    err = refuse(write(tmp_path, "e.csv", "id,v\n" + body))
    assert err.row == row and words in err.problem and "'id'" in err.problem


def test_null_and_nan_ids_parquet(tmp_path: Path) -> None:
    floats = tmp_path / "f.parquet"
    pd.DataFrame({"id": [1.0, np.nan]}).to_parquet(floats)
    err = refuse(floats)
    assert err.row == 2 and "missing id" in err.problem
    nulls = tmp_path / "n.parquet"
    pq.write_table(pa.table({"id": pa.array(["a", "b", None])}), nulls)
    assert refuse(nulls).row == 3
    empty = tmp_path / "e.parquet"
    pq.write_table(pa.table({"id": pa.array(["a", " "])}), empty)
    err = refuse(empty)
    assert err.row == 2 and "empty id" in err.problem


def test_float_ids_parquet_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pd.DataFrame({"id": [1.0, 2.0]}).to_parquet(path)
    err = refuse(path)
    assert err.row is None and "double" in err.problem and "integers or strings" in err.problem


def test_problem_after_the_first_pyarrow_block_is_located(tmp_path: Path) -> None:
    rows = "".join(f"C{i:08d},{i}\n" for i in range(20_000))
    err = refuse(write(tmp_path, "big.csv", "id,v\n" + rows + "C00000007,1\n"))
    assert err.row == 20_002 and "'C00000007'" in err.problem and "first seen on row 9" in err.problem
    err = refuse(write(tmp_path, "big2.csv", "id,v\n" + rows + "X,1,2\n"))
    assert err.row == 20_002


def test_a_field_too_big_for_the_line_scan_still_gives_a_data_error(tmp_path: Path) -> None:
    big = "x" * 200_000  # over csv.field_size_limit(); pyarrow reads it fine
    assert len(load_table(write(tmp_path, "ok.csv", f"id,v\n1,{big}\n2,y\n"))) == 2
    err = refuse(write(tmp_path, "dup.csv", f"id,v\n1,{big}\n2,y\n1,z\n"))
    assert err.row is None and "duplicate id '1'" in err.problem and "data record 3" in err.problem
    err = refuse(write(tmp_path, "rag.csv", f"id,v\n1,{big}\n2\n"))
    assert err.row is None and "Expected 2 columns" in err.problem
