"""The runtime's party runner over the in-memory channel (the gRPC path is in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from jointly.channel import Channel
from jointly.channel.memory import MemoryHub
from jointly.config.job import JobSpec
from jointly.errors import DataError, ProtocolAborted
from jointly.progress import NullProgress
from jointly.runtime.jobs import PartyContext, run_party


def _spec(receivers: list[str]) -> JobSpec:
    return JobSpec.from_dict(
        {
            "name": "t",
            "kind": "psi",
            "parties": {"bank": {"data": "bank.csv", "id_column": "cid"}, "telco": {"data": "telco.csv"}},
            "psi": {"receivers": receivers},
        }
    )


def _write(tmp_path: Path) -> None:
    pd.DataFrame({"cid": ["a", "b", "c", "d"], "x": [1, 2, 3, 4]}).to_csv(tmp_path / "bank.csv", index=False)
    pd.DataFrame({"id": ["c", "d", "e"]}).to_csv(tmp_path / "telco.csv", index=False)


def _runner(spec: JobSpec, tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(ch: Channel) -> dict[str, object]:
        ctx = PartyContext(
            spec=spec, party=ch.party, job_id="j1", data_dir=tmp_path, progress=NullProgress(), workers=1
        )
        return run_party(ctx, ch, tmp_path / ch.party / "output")

    return run


def test_outputs_go_to_receivers_only(tmp_path: Path) -> None:
    _write(tmp_path)
    spec = _spec(["bank"])
    out = MemoryHub(["bank", "telco"]).run({p: _runner(spec, tmp_path) for p in ("bank", "telco")})
    assert out["bank"]["intersection_size"] == 2
    assert "intersection_size" not in out["telco"]
    ids = pd.read_csv(tmp_path / "bank" / "output" / "intersection.csv", dtype=str)["cid"].tolist()
    assert ids == ["c", "d"]
    assert json.loads((tmp_path / "bank" / "output" / "result.json").read_text())["job_id"] == "j1"
    assert not (tmp_path / "telco" / "output" / "intersection.csv").exists()


def test_bad_data_fails_in_the_load_stage_and_leaves_nothing(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "telco.csv").write_text("id\nx\nx\n")
    spec = _spec(["bank", "telco"])
    hub = MemoryHub(["bank", "telco"])
    with pytest.raises(DataError, match=r"telco\.csv"):
        hub.run({p: _runner(spec, tmp_path) for p in ("bank", "telco")})
    for party in ("bank", "telco"):
        assert not (tmp_path / party / "output").exists()
        assert not (tmp_path / party / "output.partial").exists()


def test_existing_outputs_are_never_overwritten(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "bank" / "output").mkdir(parents=True)
    spec = _spec(["bank"])
    with pytest.raises((DataError, ProtocolAborted)):
        MemoryHub(["bank", "telco"]).run({p: _runner(spec, tmp_path) for p in ("bank", "telco")}, timeout=30)
