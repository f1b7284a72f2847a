"""Query jobs through the runtime: a client looks its ids up in a server's labelled set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from jointly.channel.memory import MemoryHub
from jointly.config.job import JobSpec
from jointly.errors import ConfigError, DataError
from jointly.progress import NullProgress
from jointly.runtime.jobs import PartyContext, run_party


def write_sets(tmp_path: Path) -> None:
    blacklist = pd.DataFrame({"id": [f"C{i:05d}" for i in range(0, 3000, 3)], "reason": ["fraud", "aml"] * 500})
    blacklist.to_csv(tmp_path / "blacklist.csv", index=False)
    pd.DataFrame({"id": ["C00000", "C00001", "C00003", "C02997", "X"]}).to_csv(tmp_path / "ask.csv", index=False)


def spec(method: str, **query: Any) -> JobSpec:
    return JobSpec.from_dict(
        {
            "name": "check",
            "kind": "query",
            "parties": {"bank": {"data": "ask.csv"}, "bureau": {"data": "blacklist.csv", "label": "reason"}},
            "query": {"client": "bank", "server": "bureau", "method": method, **query},
        }
    )


def run(tmp_path: Path, job: JobSpec, job_id: str = "q1") -> dict[str, dict[str, Any]]:
    hub = MemoryHub(job.party_names)

    def side(party: str) -> Any:
        def fn(ch: Any) -> dict[str, Any]:
            ctx = PartyContext(
                spec=job,
                party=party,
                job_id=job_id,
                data_dir=tmp_path,
                progress=NullProgress(),
                jobs_dir=tmp_path / party / "jobs",
                workers=1,
            )
            return run_party(ctx, ch, tmp_path / party / "jobs" / job_id / "output")

        return fn

    return hub.run({p: side(p) for p in job.party_names}, timeout=300)


@pytest.mark.parametrize("method", ["labeled_psi", "pir"])
def test_the_client_learns_membership_and_labels_the_server_only_counts(tmp_path: Path, method: str) -> None:
    write_sets(tmp_path)
    results = run(tmp_path, spec(method))
    assert results["bank"]["found"] == 3 and results["bank"]["ids_asked"] == 5
    table = pd.read_csv(tmp_path / "bank" / "jobs" / "q1" / "output" / "results.csv", keep_default_na=False)
    got = dict(zip(table["id"], table["label"].where(table["found"], None), strict=True))
    assert got == {"C00000": "fraud", "C00001": None, "C00003": "aml", "C02997": "aml", "X": None}
    server = results["bureau"]
    assert server["role"] == "server" and server["set_size"] == 1000
    assert "found" not in server and not (tmp_path / "bureau" / "jobs" / "q1" / "output" / "results.csv").exists()


def test_labeled_psi_preprocesses_once_per_set_version_and_the_client_downloads_the_table_once(
    tmp_path: Path,
) -> None:
    write_sets(tmp_path)
    first = run(tmp_path, spec("labeled_psi"), "q1")
    again = run(tmp_path, spec("labeled_psi"), "q2")
    assert first["bureau"]["preprocessed_earlier"] is False and again["bureau"]["preprocessed_earlier"] is True
    assert first["bank"]["table_downloaded"] is True and again["bank"]["table_downloaded"] is False
    assert again["bank"]["found"] == 3
    key = next((tmp_path / "bureau" / "cache" / "labeled_psi" / "server").glob("*/oprf.key"))
    assert key.stat().st_mode & 0o077 == 0  # the OPRF key is readable by the node's user only
    blacklist = pd.read_csv(tmp_path / "blacklist.csv")
    blacklist.loc[0, "reason"] = "cleared"  # a new version of the set: preprocessed again, downloaded again
    blacklist.to_csv(tmp_path / "blacklist.csv", index=False)
    third = run(tmp_path, spec("labeled_psi"), "q3")
    assert third["bureau"]["preprocessed_earlier"] is False and third["bank"]["table_downloaded"] is True
    table = pd.read_csv(tmp_path / "bank" / "jobs" / "q3" / "output" / "results.csv", keep_default_na=False)
    assert table.set_index("id").loc["C00000", "label"] == "cleared"


def test_too_many_ids_and_a_server_without_labels_are_refused(tmp_path: Path) -> None:
    write_sets(tmp_path)
    with pytest.raises(DataError, match="at most 2"):
        run(tmp_path, spec("pir", max_ids=2))
    with pytest.raises(ConfigError, match="label"):
        JobSpec.from_dict(
            {
                "name": "x",
                "kind": "query",
                "parties": {"bank": {"data": "ask.csv"}, "bureau": {"data": "blacklist.csv"}},
                "query": {"client": "bank", "server": "bureau"},
            }
        )


def test_an_mpc_job_reveals_the_statistic_to_the_result_party_only(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    ids = [f"P{i}" for i in range(300)]
    x = rng.normal(50, 10, 300)
    y = 0.8 * x + rng.normal(0, 5, 300)
    pd.DataFrame({"id": ids, "income": x}).to_csv(tmp_path / "bank.csv", index=False)
    order = rng.permutation(300)[:250]  # the telco knows 250 of the 300 customers, in its own order
    pd.DataFrame({"id": [ids[i] for i in order], "spend": y[order]}).to_csv(tmp_path / "telco.csv", index=False)
    job = JobSpec.from_dict(
        {
            "name": "corr",
            "kind": "mpc",
            "parties": {"bank": {"data": "bank.csv"}, "telco": {"data": "telco.csv"}, "regulator": {}},
            "mpc": {
                "compute": ["bank", "telco"],
                "results": ["regulator"],
                "dealer": "regulator",
                "statistic": "pearson",
                "layout": "vertical",
                "columns": {"bank": ["income"], "telco": ["spend"]},
            },
        }
    )
    results = run(tmp_path, job)
    expected = float(np.corrcoef(x[order], y[order])[0, 1])
    assert results["regulator"]["result"]["value"] == pytest.approx(expected, abs=1e-3)
    assert "result" not in results["bank"] and "result" not in results["telco"]
    assert results["bank"]["aligned_rows"] == 250
    assert sorted(results["regulator"]["roles"]) == ["dealer", "result"]


def test_an_sslr_job_gives_the_result_party_a_model_of_both_parties_features(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    n = 400
    ids = [f"P{i}" for i in range(n)]
    x = rng.normal(0, 1, (n, 3))
    y = (x @ np.array([1.5, -2.0, 1.0]) + rng.normal(0, 0.3, n) > 0).astype(int)
    pd.DataFrame({"id": ids, "a": x[:, 0], "y": y}).to_csv(tmp_path / "bank.csv", index=False)
    pd.DataFrame({"id": ids, "b": x[:, 1], "c": x[:, 2]}).to_csv(tmp_path / "telco.csv", index=False)
    job = JobSpec.from_dict(
        {
            "name": "sslr",
            "kind": "mpc",
            "parties": {"bank": {"data": "bank.csv", "label": "y"}, "telco": {"data": "telco.csv"}, "auditor": {}},
            "mpc": {
                "compute": ["bank", "telco"],
                "results": ["bank"],
                "dealer": "auditor",
                "statistic": "sslr",
                "layout": "vertical",
                "columns": {"bank": ["a"], "telco": ["b", "c"]},
                "sslr": {"iterations": 30, "learning_rate": 1.0},
            },
        }
    )
    results = run(tmp_path, job)
    model = results["bank"]["result"]
    w = np.asarray(model["weights"])
    assert len(w) == 3 and [len(model["blocks"][p]) for p in ("bank", "telco")] == [1, 2]
    accuracy = float((((x @ w) + model["intercept"] > 0).astype(int) == y).mean())
    assert accuracy > 0.9
    assert "result" not in results["telco"] and "result" not in results["auditor"]
