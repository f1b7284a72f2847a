"""Atomic writers: the target is either the old file or the new one, and no temporary file is left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jointly.data.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text, write_table
from jointly.data.tables import load_table
from jointly.errors import DataError


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_bytes_text_json(tmp_path: Path) -> None:
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01") == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_bytes() == "héllo\n".encode()
    atomic_write_json(tmp_path / "j.json", {"a": [1, 2.5, None], "b": "ø"})
    assert json.loads((tmp_path / "j.json").read_text(encoding="utf-8")) == {"a": [1, 2.5, None], "b": "ø"}
    assert leftovers(tmp_path) == []


def test_replaces_existing_file_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert leftovers(target.parent) == []


def test_json_that_fails_to_serialise_leaves_the_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"ok": True})
    before = target.read_bytes()
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"nan": float("nan")})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_failed_replace_removes_the_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, table = tmp_path / "f.txt", tmp_path / "t.csv"
    text.write_text("old")
    table.write_text("id\nold\n")

    def boom(src: object, dst: object) -> None:
        assert Path(str(src)).stat().st_size > 0  # the new content was fully written before the rename
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(text, "new")
    with pytest.raises(OSError, match="disk on fire"):
        write_table(pd.DataFrame({"id": ["new"]}), table)
    monkeypatch.undo()
    assert text.read_text() == "old"
    assert table.read_text() == "id\nold\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "t.csv"]


def test_exception_inside_atomic_path_block(tmp_path: Path) -> None:
    target = tmp_path / "m.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_write_table_failing_mid_write_leaves_no_trace(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    bad = pd.DataFrame({"id": [1, 2], "mixed": [1, "x"]})  # pyarrow cannot convert a mixed object column
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises, nothing may be left behind
        write_table(bad, target)
    assert list(tmp_path.iterdir()) == []


def test_replacing_keeps_the_file_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    target.write_text("{}")
    target.chmod(0o600)
    atomic_write_json(target, {"k": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet", "t.pq"])
def test_write_table_round_trips_through_load_table(tmp_path: Path, name: str) -> None:
    frame = pd.DataFrame({"id": ["a", "b,c", "d\ne"], "x": [1.5, np.nan, 3.0], "n": [1, 2, 3]})
    path = write_table(frame, tmp_path / name)
    table = load_table(path)
    assert table.ids == ["a", "b,c", "d\ne"]
    pd.testing.assert_frame_equal(table.frame, frame)
    assert leftovers(tmp_path) == []


def test_write_table_refuses_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported file type"):
        write_table(pd.DataFrame({"id": [1]}), tmp_path / "t.xlsx")
    assert list(tmp_path.iterdir()) == []
