"""Load one party's table (CSV or Parquet) and refuse it, clearly, when it is unusable.

``load_table`` is the only way jointly reads a party's data.  It returns a small
:class:`Table` or raises :class:`~jointly.errors.DataError` naming the file, the
row and the problem, so a data owner can fix the file without reading a traceback.

Row numbering (``DataError.row``):

* **CSV** -- the 1-based *line number in the file*, counting the header as line 1
  (blank lines count too), i.e. what a text editor shows.  For a record whose quoted
  field spans several lines it is the line where the record starts; for bad bytes
  it is the line holding the first bad byte.  Problems with the header itself
  (missing id column, duplicate or unknown column names) are reported on the
  header's line.
* **Parquet** -- the 0-based row index plus one (the first row is row 1); there is
  no header row.  Schema problems have ``row=None``.
* ``row`` is ``None`` when no single row is at fault (missing file, empty file, a
  file with no data rows).

Fast path: the file is checked for UTF-8 in one streaming pass, then parsed with
pyarrow's multi-threaded CSV reader and validated with vectorised kernels.  Only
when something is wrong does a line-by-line scan with :mod:`csv` run, to find the
exact line to report.

What counts as a missing id: in CSV, a field that is empty, whitespace only, or
``nan`` in any case (what Python and pandas print for a float NaN); in Parquet, a
null or NaN, or such a string.  Ids are otherwise kept exactly as written: CSV ids
are always strings (``"007"`` stays ``"007"``); Parquet integer ids stay integers.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from jointly.errors import DataError

__all__ = ["CSV_SUFFIXES", "PARQUET_SUFFIXES", "Table", "TableFormat", "load_table", "table_format"]

TableFormat = Literal["csv", "csv.gz", "parquet"]
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
_SUFFIXES: tuple[tuple[str, TableFormat], ...] = (
    (".csv.gz", "csv.gz"),
    (".csv", "csv"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
)
_MISSING_ID_TEXT = ("", "nan")  # compared after trimming whitespace and lower-casing
_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")
_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True, eq=False)
class Table:
    """One party's table: the id column (kept as a column of ``frame``) plus feature columns."""

    path: Path
    id_column: str
    frame: pd.DataFrame

    @property
    def ids(self) -> list[str | int]:
        """The ids in file order (a new list each call): strings for CSV; ints or strings for Parquet."""
        ids: list[str | int] = self.frame[self.id_column].tolist()
        return ids

    @property
    def columns(self) -> list[str]:
        """The feature columns, in file order, without the id column."""
        return [str(c) for c in self.frame.columns if c != self.id_column]

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Table(path={str(self.path)!r}, id_column={self.id_column!r}, rows={len(self)}, columns={self.columns})"


def table_format(path: str | Path) -> TableFormat:
    """The format of a table file, from its extension (case-insensitive); ``DataError`` if unsupported."""
    name = Path(path).name.lower()
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    supported = ", ".join(s for s, _ in _SUFFIXES)
    found = "".join(Path(path).suffixes) or "no extension"
    raise DataError(str(path), f"unsupported file type ({found}); expected one of {supported}")


def load_table(path: str | Path, *, id_column: str = "id", columns: Sequence[str] | None = None) -> Table:
    """Read and validate a party's table.

    ``columns`` selects feature columns (``None``: all of them; ``[]``: only the
    ids).  Raises :class:`DataError` if the file is missing, not a regular file,
    of an unsupported type, empty, has no data rows, is not UTF-8, has a row with
    the wrong number of fields, lacks the id column or a requested column, or has
    a missing or duplicate id.  See the module docstring for how rows are numbered.
    """
    p = Path(path)
    fmt = table_format(p)
    if not p.exists():
        raise DataError(str(p), "file not found")
    if not p.is_file():
        kind = "it is a directory" if p.is_dir() else "a device, socket or pipe?"
        raise DataError(str(p), f"not a regular file ({kind})")
    if p.stat().st_size == 0:
        raise DataError(str(p), "file is empty (0 bytes); expected a header line and at least one data row")
    wanted = None if columns is None else _dedupe(c for c in columns if c != id_column)
    if fmt == "parquet":
        return _load_parquet(p, id_column, wanted)
    return _load_csv(p, id_column, wanted, gz=fmt == "csv.gz")


# ---------------------------------------------------------------- shared checks


def _dedupe(items: Iterator[str] | Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _show(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "(none)"


def _check_header(path: Path, names: Sequence[str], id_column: str, wanted: list[str] | None, row: int | None) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(str(path), f"duplicate column name {name!r} in the header", row=row)
        seen.add(name)
    if id_column not in seen:
        raise DataError(str(path), f"id column {id_column!r} not found; the columns are: {_show(names)}", row=row)
    missing = [c for c in wanted or () if c not in seen]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise DataError(
            str(path), f"requested column{plural} {_show(missing)} not found; the columns are: {_show(names)}", row=row
        )


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    """Index of the first true value of a boolean array, or -1."""
    return int(pc.index(mask.fill_null(False), True).as_py())


def _missing_text_mask(ids: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(ids)), value_set=pa.array(_MISSING_ID_TEXT))


def _first_duplicate(ids: pa.ChunkedArray) -> tuple[int, int] | None:
    """``(first_index, second_index)`` of the earliest repeated id, or ``None`` if all ids are distinct."""
    if len(pc.unique(ids)) == len(ids):
        return None
    series = pd.Series(ids.to_pandas())
    second = int(series.duplicated(keep="first").to_numpy().argmax())
    first = int((series == series.iloc[second]).to_numpy().argmax())
    return first, second


# ---------------------------------------------------------------- CSV


def _open_binary(path: Path, gz: bool) -> gzip.GzipFile | io.BufferedReader:
    return gzip.GzipFile(path, "rb") if gz else open(path, "rb")


def _open_text(path: Path, gz: bool) -> io.TextIOWrapper:
    return io.TextIOWrapper(_open_binary(path, gz), encoding="utf-8-sig", newline="")


def _check_utf8(path: Path, gz: bool) -> tuple[int, int]:
    """Stream the (decompressed) bytes through a strict UTF-8 decoder.

    Returns the number of bytes and of ``"`` characters (an odd count hints at an unterminated quoted field).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    total = 0
    quotes = 0
    newlines = 0  # newlines in bytes already accepted by the decoder
    pending = b""  # bytes of an incomplete character held back at a chunk boundary
    try:
        with _open_binary(path, gz) as f:
            while True:
                chunk = f.read(_CHUNK_BYTES)
                final = not chunk
                try:
                    decoder.decode(chunk, final)
                except UnicodeDecodeError as e:
                    # e.start is relative to pending + chunk (the decoder prepends its buffer)
                    data = pending + chunk
                    line = newlines + data.count(b"\n", 0, e.start) + 1
                    col_start = data.rfind(b"\n", 0, e.start) + 1
                    bad = data[e.start : e.end].hex(" ")
                    prefix = data[col_start : e.start].decode("utf-8", errors="replace")
                    column = len(prefix) + 1
                    raise DataError(
                        str(path),
                        f"not valid UTF-8: undecodable byte(s) {bad} at character {column} of the line; "
                        "save the file with UTF-8 encoding",
                        row=line,
                    ) from None
                if final:
                    return total, quotes
                data = pending + chunk
                held = len(decoder.getstate()[0])
                accepted, pending = (data[:-held], data[-held:]) if held else (data, b"")
                newlines += accepted.count(b"\n")
                total += len(chunk)
                quotes += chunk.count(b'"')
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(str(path), f"cannot read the file ({_gzip_hint(gz)}{e})") from None


def _gzip_hint(gz: bool) -> str:
    return "is it really gzip-compressed? " if gz else ""


def _records(path: Path, gz: bool) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(start_line, fields)`` for each non-blank record, header included.  May raise ``csv.Error``."""
    with _open_text(path, gz) as f:
        reader = csv.reader(f)
        previous = 0
        for fields in reader:
            start = previous + 1
            previous = reader.line_num
            if fields:
                yield start, fields


def _csv_error_line(path: Path, gz: bool) -> int:
    """The line where :mod:`csv` stopped, after it raised ``csv.Error`` (re-scan to find it)."""
    with _open_text(path, gz) as f:
        reader = csv.reader(f)
        try:
            for _ in reader:
                pass
        except csv.Error:
            return reader.line_num
    return 0


def _read_header(path: Path, gz: bool) -> tuple[int, list[str]]:
    try:
        for line, fields in _records(path, gz):
            return line, fields
    except csv.Error as e:
        raise DataError(str(path), f"cannot parse the header: {e}", row=_csv_error_line(path, gz)) from None
    raise DataError(str(path), "file is empty (only blank lines); expected a header line and at least one data row")


def _check_quotes_closed(path: Path, gz: bool) -> None:
    """Refuse a quoted field left open at the end of the file (pyarrow would silently swallow the rest)."""
    with _open_text(path, gz) as f:
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                raise DataError(
                    str(path),
                    'unterminated quoted field: a value opened with " on this row is never closed',
                    row=start,
                ) from None
            # any other strictness complaint is something pyarrow accepts; leave it to the parser


def _lines_of(path: Path, gz: bool, indices: Sequence[int]) -> dict[int, int]:
    """Map 0-based data-record indices to the line where each record starts.

    Indices the scan cannot reach (``csv`` refused something pyarrow accepted,
    e.g. a field over ``csv.field_size_limit()``) are left out.
    """
    wanted = set(indices)
    found: dict[int, int] = {}
    try:
        records = _records(path, gz)
        next(records)  # header
        for index, (line, _) in enumerate(records):
            if index in wanted:
                found[index] = line
                if len(found) == len(wanted):
                    break
    except csv.Error:
        pass
    return found


def _where(lines: dict[int, int], index: int) -> str:
    return f"row {lines[index]}" if index in lines else f"data record {index + 1} (line unknown)"


def _locate_parse_problem(path: Path, gz: bool, n_fields: int, arrow_message: str) -> DataError:
    """Find the first malformed record with :mod:`csv`, after pyarrow refused the file."""
    try:
        records = _records(path, gz)
        next(records)  # header
        for line, fields in records:
            if len(fields) != n_fields:
                return DataError(
                    str(path),
                    f"row has {len(fields)} field{'s' if len(fields) != 1 else ''} but the header has {n_fields} "
                    "(a missing or extra delimiter, or an unquoted comma in a value?)",
                    row=line,
                )
    except csv.Error as e:
        return DataError(str(path), f"malformed CSV: {arrow_message} (the line could not be located: {e})")
    return DataError(str(path), f"malformed CSV: {arrow_message}")


def _load_csv(path: Path, id_column: str, wanted: list[str] | None, *, gz: bool) -> Table:
    size, quotes = _check_utf8(path, gz)
    if size == 0:
        raise DataError(str(path), "file is empty (no data after decompression); expected a header line")
    header_line, names = _read_header(path, gz)
    if quotes % 2:
        _check_quotes_closed(path, gz)
    _check_header(path, names, id_column, wanted, row=header_line)
    include = names if wanted is None else [id_column, *wanted]
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=True),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={id_column: pa.string()},
                include_columns=include,
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as e:
        raise _locate_parse_problem(path, gz, len(names), str(e)) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(str(path), f"cannot read the file ({_gzip_hint(gz)}{e})") from None
    if table.num_rows == 0:
        raise DataError(str(path), "the file has a header but no data rows")
    ids = table.column(id_column)
    missing = _first_true(_missing_text_mask(ids))
    if missing >= 0:
        lines = _lines_of(path, gz, [missing])
        value = ids[missing].as_py()
        what = "empty id" if not value.strip() else f"missing id ({value!r})"
        where = "" if missing in lines else f" (at {_where(lines, missing)})"
        raise DataError(str(path), f"{what} in id column {id_column!r}{where}", row=lines.get(missing))
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        first, second = duplicate
        lines = _lines_of(path, gz, [first, second])
        value = ids[second].as_py()
        raise DataError(
            str(path),
            f"duplicate id {value!r} in column {id_column!r} (first seen on {_where(lines, first)}"
            + ("" if second in lines else f"; repeated at {_where(lines, second)}")
            + ")",
            row=lines.get(second),
        )
    return Table(path=path, id_column=id_column, frame=table.to_pandas())


# ---------------------------------------------------------------- Parquet


def _load_parquet(path: Path, id_column: str, wanted: list[str] | None) -> Table:
    try:
        pf = pq.ParquetFile(path)
        names = [n for n in pf.schema_arrow.names if not _PANDAS_INDEX_COLUMN.fullmatch(n)]
        _check_header(path, names, id_column, wanted, row=None)
        if pf.metadata.num_rows == 0:
            raise DataError(str(path), "the file has a schema but no data rows")
        table = pf.read(columns=names if wanted is None else [id_column, *wanted], use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as e:
        raise DataError(str(path), f"not a readable Parquet file: {e}") from None
    ids = table.column(id_column)
    if pa.types.is_dictionary(ids.type):
        ids = ids.cast(ids.type.value_type)
        table = table.set_column(table.schema.get_field_index(id_column), id_column, ids)
    missing = _first_true(pc.is_null(ids, nan_is_null=True))
    if missing >= 0:
        raise DataError(str(path), f"missing id (null) in id column {id_column!r}", row=missing + 1)
    is_text = pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type) or pa.types.is_string_view(ids.type)
    if not (is_text or pa.types.is_integer(ids.type)):
        raise DataError(str(path), f"id column {id_column!r} has type {ids.type}; ids must be integers or strings")
    if is_text:
        missing = _first_true(_missing_text_mask(ids))
        if missing >= 0:
            value = ids[missing].as_py()
            what = "empty id" if not value.strip() else f"missing id ({value!r})"
            raise DataError(str(path), f"{what} in id column {id_column!r}", row=missing + 1)
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        first, second = duplicate
        value = ids[second].as_py()
        raise DataError(
            str(path),
            f"duplicate id {value!r} in column {id_column!r} (first seen at row {first + 1})",
            row=second + 1,
        )
    return Table(path=path, id_column=id_column, frame=table.to_pandas(ignore_metadata=True))
