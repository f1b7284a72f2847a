"""The CLI as a user runs it: separate processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jointly.config.federation import Federation
from jointly.data.bundled import EXPECTED_OVERLAP, QUERY_HITS

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


@pytest.mark.timeout(900)  # five jobs among 2 to 4 node processes each
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = jointly("demo", "--dir", "runs", "--workers", "1", cwd=tmp_path, timeout=600)
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
    horizontal = summary["horizontal"]["results"]
    assert horizontal["hub"]["metrics"]["accuracy"] > 0.9 and horizontal["hub"]["rounds_run"] == 10
    assert all(horizontal[c]["role"] == "client" and "rounds" not in horizontal[c] for c in ("clinic-a", "clinic-b"))
    statistics = summary["statistics"]
    value = statistics["results"]["registry"]["result"]["value"]
    assert abs(value - statistics["plaintext"]) < 1e-3  # the registry's r equals the one in the clear
    assert "result" not in statistics["results"]["hospital"] and "result" not in statistics["results"]["lab"]
    query = summary["query"]
    assert query["results"]["bank"]["found"] == QUERY_HITS and query["results"]["bureau"]["ids_asked"] == 1000
    assert query["again"]["bank"]["table_downloaded"] is False
    assert "joint" in proc.stdout and "federated model" in proc.stdout and "blacklisted" in proc.stdout
    assert "succeeded" in proc.stdout or "done" in proc.stdout


def test_run_with_a_bad_job_file_gives_a_clear_error(tmp_path: Path) -> None:
    jointly("init", "--parties", "bank,telco", "--dir", "fed", cwd=tmp_path)
    (tmp_path / "job.yaml").write_text("name: x\nkind: psi\nparties: {bank: {data: a.csv}}\n")
    proc = jointly("run", "job.yaml", "--federation", "fed/federation.yaml", "--as", "bank", cwd=tmp_path)
    assert proc.returncode == 2
    assert "at least two parties" in proc.stderr


def test_train_with_run_then_score_with_predict(tmp_path: Path) -> None:
    """`jointly run` a SecureBoost job, then `jointly predict` new rows with the stored model parts."""
    from jointly.config.federation import init_federation
    from jointly.data.bundled import VERTICAL_ID_COLUMN, VERTICAL_LABEL, demo_vertical_tables
    from jointly.runtime.launcher import LocalFederation

    fed_path = init_federation(["hospital", "lab"], tmp_path / "fed", name="e2e-predict")
    tables = demo_vertical_tables(tmp_path / "data")
    job = {
        "name": "diagnosis",
        "kind": "secureboost",
        "parties": {
            "hospital": {"data": tables["hospital"].name, "id_column": VERTICAL_ID_COLUMN, "label": VERTICAL_LABEL},
            "lab": {"data": tables["lab"].name, "id_column": VERTICAL_ID_COLUMN},
        },
        "secureboost": {"n_trees": 2, "max_depth": 2, "key_bits": 1024, "allow_unsafe_key_size": True},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    with LocalFederation(fed_path, tmp_path, data_dir=tmp_path / "data", workers=1) as local:
        trained = jointly("run", "job.yaml", "--federation", str(fed_path), "--as", "hospital", cwd=tmp_path)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        args = ["--federation", str(fed_path), "--as", "hospital", "--id-column", VERTICAL_ID_COLUMN]
        data = ["--data", f"hospital={tables['hospital'].name}", "--data", f"lab={tables['lab'].name}"]
        scored = jointly("predict", "--model", "diagnosis@v1", *data, *args, cwd=tmp_path)
        assert scored.returncode == 0, scored.stdout + scored.stderr
        assert "scored_rows" in scored.stdout
        (job_dir,) = [p for p in (local.workdir("hospital") / "jobs").iterdir() if p.name.startswith("predict-")]
        assert (job_dir / "output" / "predictions.csv").exists()
        missing = jointly("predict", "--model", "nosuch", *data, *args, cwd=tmp_path)
        assert missing.returncode != 0 and "no model 'nosuch'" in missing.stdout + missing.stderr
        bad = jointly("predict", "--model", "diagnosis", "--data", "hospital", *args, cwd=tmp_path)
        assert bad.returncode != 0 and "PARTY=PATH" in bad.stdout + bad.stderr


def test_query_a_partners_blacklist_from_the_command_line(tmp_path: Path) -> None:
    """`jointly query`: a registered blacklist on the bureau's node, ids from a file on the bank's."""
    import pandas as pd

    from jointly.config.federation import init_federation
    from jointly.runtime.launcher import LocalFederation

    fed_path = init_federation(["bank", "bureau"], tmp_path / "fed", name="e2e-query")
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"id": [f"C{i}" for i in range(0, 500, 5)], "reason": "fraud"}).to_csv(data / "bl.csv", index=False)
    pd.DataFrame({"id": ["C0", "C1", "C495"]}).to_csv(data / "ask.csv", index=False)
    with LocalFederation(fed_path, tmp_path, data_dir=data, workers=1) as local:
        token = local.admin_token("bureau")
        node = local.api_url("bureau")
        api = ["--node", node, "--token", token]
        added = jointly("dataset", "add", "blacklist", str(data / "bl.csv"), "--id-column", "id", *api, cwd=tmp_path)
        assert added.returncode == 0, added.stdout + added.stderr
        args = ["--server", "bureau", "--ids", "ask.csv", "--server-data", "dataset:blacklist", "--label", "reason"]
        done = jointly("query", *args, "--federation", str(fed_path), "--as", "bank", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert '"found": 2' in done.stdout
        (job_dir,) = list((local.workdir("bank") / "jobs").iterdir())
        results = pd.read_csv(job_dir / "output" / "results.csv")
        assert results["found"].tolist() == [True, False, True]
        over = jointly("query", *args, "--max-ids", "2", "--federation", str(fed_path), "--as", "bank", cwd=tmp_path)
        assert over.returncode != 0 and "at most 2" in over.stdout + over.stderr
