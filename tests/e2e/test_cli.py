"""The CLI as a user runs it: separate processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jointly.config.federation import Federation
from jointly.data.bundled import EXPECTED_OVERLAP

pytestmark = pytest.mark.integration


def jointly(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jointly", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_init_writes_a_federation(tmp_path: Path) -> None:
    proc = jointly("init", "--parties", "bank,telco,insurer", "--dir", "fed", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fed = Federation.load(tmp_path / "fed" / "federation.yaml")
    assert fed.party_names == ("bank", "telco", "insurer")
    raw = yaml.safe_load((tmp_path / "fed" / "federation.yaml").read_text())
    assert set(raw["parties"]) == {"bank", "telco", "insurer"}
    for party in fed.party_names:
        entry = fed.party(party)
        assert entry.cert.exists() and entry.verify_key.exists()
        assert entry.key is not None and (entry.key.stat().st_mode & 0o077) == 0


def test_init_refuses_bad_party_names(tmp_path: Path) -> None:
    proc = jointly("init", "--parties", "bank,Bad Name", "--dir", "fed", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Bad Name" in proc.stderr + proc.stdout
    assert not (tmp_path / "fed" / "federation.yaml").exists()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = jointly("demo", "--dir", "runs", "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "result.json").read_text())
    for party in ("bank", "telco"):
        assert summary["psi"]["results"][party]["intersection_size"] == EXPECTED_OVERLAP
    vertical = summary["vertical"]["results"]
    hospital, lab = vertical["hospital"], vertical["lab"]
    assert hospital["aligned_rows"] == lab["aligned_rows"] == 502  # the patients both hold
    assert hospital["metrics"]["auc"] > 0.9 and "baseline" in hospital
    assert "metrics" not in lab and "baseline" not in lab  # the lab learns no scores
    scoring = summary["vertical"]["scoring"]
    assert scoring["hospital"]["scored_rows"] == 502 and "predictions_file" not in scoring["lab"]
    assert "joint" in proc.stdout
    assert "succeeded" in proc.stdout or "done" in proc.stdout


def test_run_with_a_bad_job_file_gives_a_clear_error(tmp_path: Path) -> None:
    jointly("init", "--parties", "bank,telco", "--dir", "fed", cwd=tmp_path)
    (tmp_path / "job.yaml").write_text("name: x\nkind: psi\nparties: {bank: {data: a.csv}}\n")
    proc = jointly("run", "job.yaml", "--federation", "fed/federation.yaml", "--as", "bank", cwd=tmp_path)
    assert proc.returncode == 2
    assert "at least two parties" in proc.stderr
