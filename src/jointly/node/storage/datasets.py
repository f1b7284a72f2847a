"""Datasets registered on one node: a name for a local table file plus its schema.

Only the file's path, column names and types, and row count are stored; rows
never enter the database, and nothing here is sent to other parties (a job spec
names a dataset, and each node resolves the name to its own file).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jointly.data.tables import table_format
from jointly.errors import ConfigError, Conflict, DataError, NotFound
from jointly.node.storage.db import Database
from jointly.node.storage.models import DatasetRow

__all__ = ["Dataset", "DatasetsRepo", "TableInfo", "inspect_table"]

_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True)
class Dataset:
    """A registered table: where it is and what columns it has (never its rows)."""

    name: str
    path: str
    format: str
    id_column: str
    columns: tuple[Mapping[str, str], ...]  # ({"name": ..., "dtype": ...}, ...) in file order
    rows: int | None
    description: str = ""
    created: float = field(default_factory=time.time)
    created_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "format": self.format,
            "id_column": self.id_column,
            "columns": [dict(c) for c in self.columns],
            "rows": self.rows,
            "description": self.description,
            "created": self.created,
            "created_by": self.created_by,
        }


def _dataset(row: DatasetRow) -> Dataset:
    return Dataset(
        name=row.name,
        path=row.path,
        format=row.format,
        id_column=row.id_column,
        columns=tuple({"name": str(c["name"]), "dtype": str(c["dtype"])} for c in row.columns),
        rows=row.rows,
        description=row.description,
        created=row.created,
        created_by=row.created_by,
    )


class DatasetsRepo:
    """Add, read and remove dataset registrations (the files themselves are never touched)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        path: str,
        *,
        format: str,
        id_column: str,
        columns: Sequence[Mapping[str, str]],
        rows: int | None,
        description: str = "",
        created_by: str = "",
    ) -> Dataset:
        """Register a dataset; ``Conflict`` if the name is taken, ``ConfigError`` for an empty name or column."""
        if not name or len(name) > 128:
            raise ConfigError(f"invalid dataset name {name!r} (1 to 128 characters)")
        cols = [{"name": str(c["name"]), "dtype": str(c["dtype"])} for c in columns]
        if id_column not in {c["name"] for c in cols}:
            raise ConfigError(f"dataset {name!r}: id column {id_column!r} is not one of its columns")
        row = DatasetRow(
            name=name,
            path=str(path),
            format=format,
            id_column=id_column,
            columns=cols,
            rows=rows,
            description=description,
            created=time.time(),
            created_by=created_by,
        )
        try:
            with self._db.write() as s:
                if s.get(DatasetRow, name) is not None:
                    raise Conflict(f"dataset {name!r} is already registered")
                s.add(row)
        except IntegrityError:
            raise Conflict(f"dataset {name!r} is already registered") from None
        return _dataset(row)

    def get(self, name: str) -> Dataset | None:
        with self._db.read() as s:
            row = s.get(DatasetRow, name)
            return None if row is None else _dataset(row)

    def list(self) -> list[Dataset]:
        """Every registered dataset, by name."""
        with self._db.read() as s:
            return [_dataset(r) for r in s.scalars(select(DatasetRow).order_by(DatasetRow.name))]

    def remove(self, name: str) -> None:
        """Forget a dataset (its file stays).  ``NotFound`` for an unknown name."""
        with self._db.write() as s:
            row = s.get(DatasetRow, name)
            if row is None:
                raise NotFound(f"no dataset {name!r}")
            s.delete(row)


class TableInfo(NamedTuple):
    """What :func:`inspect_table` learns about a table file (no values)."""

    format: str  # "csv", "csv.gz" or "parquet"
    columns: list[dict[str, str]]  # [{"name": ..., "dtype": ...}] in file order, id column included
    rows: int


def inspect_table(path: Path, id_column: str) -> TableInfo:
    """Format, column names and types, and row count of a CSV or Parquet file, without loading its values.

    Parquet: read from the file's footer.  CSV: column types are inferred from the
    first block of the file (about 1 MB; the id column is always a string, as
    :func:`~jointly.data.tables.load_table` reads it), and every row is parsed
    once, keeping only the id column, to count rows and catch malformed ones.
    Missing or duplicate ids are found later, by ``load_table``, when a job reads
    the file.  Raises :class:`DataError` for a missing or empty file, an unsupported
    extension, a malformed file, duplicate column names, a missing id column or a
    file without data rows.
    """
    p = Path(path)
    fmt = table_format(p)
    if not p.exists():
        raise DataError(str(p), "file not found")
    if not p.is_file():
        raise DataError(str(p), "not a regular file")
    if p.stat().st_size == 0:
        raise DataError(str(p), "file is empty (0 bytes); expected a header line and at least one data row")
    if fmt == "parquet":
        columns, rows = _inspect_parquet(p, id_column)
    else:
        columns, rows = _inspect_csv(p, id_column)
    if rows == 0:
        raise DataError(str(p), "the file has a header but no data rows")
    return TableInfo(fmt, columns, rows)


def _check_names(path: Path, names: Sequence[str], id_column: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(str(path), f"duplicate column name {name!r}")
        seen.add(name)
    if id_column not in seen:
        shown = ", ".join(repr(n) for n in names) or "(none)"
        raise DataError(str(path), f"id column {id_column!r} not found; the columns are: {shown}")


def _inspect_parquet(path: Path, id_column: str) -> tuple[list[dict[str, str]], int]:
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        rows = int(pf.metadata.num_rows)
    except (pa.ArrowException, OSError) as e:
        raise DataError(str(path), f"not a readable Parquet file: {e}") from None
    fields = [f for f in schema if not _PANDAS_INDEX_COLUMN.fullmatch(f.name)]
    _check_names(path, [f.name for f in fields], id_column)
    return [{"name": f.name, "dtype": str(f.type)} for f in fields], rows


def _inspect_csv(path: Path, id_column: str) -> tuple[list[dict[str, str]], int]:
    parse = pa_csv.ParseOptions(newlines_in_values=True)
    try:
        reader = pa_csv.open_csv(
            path,
            parse_options=parse,
            convert_options=pa_csv.ConvertOptions(column_types={id_column: pa.string()}, strings_can_be_null=False),
        )
        try:
            schema = reader.schema
        finally:
            reader.close()
    except pa.ArrowInvalid as e:
        raise DataError(str(path), f"malformed CSV: {e}") from None
    except (pa.ArrowException, OSError, EOFError) as e:
        raise DataError(str(path), f"cannot read the file: {e}") from None
    _check_names(path, schema.names, id_column)
    try:
        ids = pa_csv.read_csv(
            path,
            parse_options=parse,
            convert_options=pa_csv.ConvertOptions(
                column_types={id_column: pa.string()}, include_columns=[id_column], strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as e:
        raise DataError(str(path), f"malformed CSV: {e}") from None
    except (pa.ArrowException, OSError, EOFError) as e:
        raise DataError(str(path), f"cannot read the file: {e}") from None
    return [{"name": f.name, "dtype": str(f.type)} for f in schema], int(ids.num_rows)
