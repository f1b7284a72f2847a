"""Atomic file writers: a reader sees the old file or the new one, never half of one.

Every writer writes to a uniquely named temporary file in the target's own
directory (so the final rename never crosses a file system), flushes and fsyncs
it, then :func:`os.replace`\\ s it over the target and fsyncs the directory.  On
any exception -- a value that does not serialise, a full disk, a failed rename,
``KeyboardInterrupt`` -- the temporary file is removed, the target is left
exactly as it was, and the exception propagates.

Missing parent directories are created.  A new file gets the usual permissions
(``0o666`` masked by the umask); replacing a file keeps that file's permissions.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from jointly.data.tables import table_format

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "write_table"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary file next to ``path``; when the block exits normally it replaces ``path``.

    For writers that insist on a file name (pandas, pyarrow, ...).  The block must
    write the temporary file and close it; fsync and rename happen here::

        with atomic_path(out / "model.bin") as tmp:
            some_library.save(model, tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL reserves the name: never follows or clobbers something already there
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        _fsync_path(tmp)
        _keep_mode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path`` as a :class:`Path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, newlines written as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically.

    Strict: a value ``json`` cannot serialise raises ``TypeError``, and NaN or
    infinity raises ``ValueError`` (they are not JSON) -- before any file is touched.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` atomically as CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``), without its index.

    ``DataError`` if the extension is not one of those.  The result can be read
    back with :func:`jointly.data.tables.load_table`.
    """
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, engine="pyarrow", index=False)
        else:
            frame.to_csv(tmp, index=False, lineterminator="\n", compression="gzip" if fmt == "csv.gz" else None)
    return Path(path)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _keep_mode(target: Path, tmp: Path) -> None:
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
