"""Joint computation and joint query between real node processes over mutual-TLS gRPC on loopback:
a joint mean (horizontal) and a Pearson correlation (vertical, PSI-aligned) on secret shares among
three parties, and a blacklist check by labeled PSI and by keyword PIR."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.runtime.launcher import LocalFederation

from .conftest import output_dir, run_job

PARTIES = ["bank", "telco", "regulator", "bureau"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("mpc-query")
    fed = init_federation(PARTIES, tmp / "fed", name="it-mpc-query")
    data = tmp / "data"
    data.mkdir()
    rng = np.random.default_rng(3)
    ids = [f"C{i:05d}" for i in range(400)]
    income = rng.normal(60, 15, 400)
    spend = 0.5 * income + rng.normal(0, 6, 400)
    pd.DataFrame({"id": ids, "income": income, "exposure": rng.normal(10, 3, 400)}).to_csv(
        data / "bank.csv", index=False
    )
    keep = np.sort(rng.permutation(400)[:320])
    telco = pd.DataFrame({"id": [ids[i] for i in keep], "spend": spend[keep], "exposure": rng.normal(20, 4, 320)})
    telco.to_csv(data / "telco.csv", index=False)
    blacklist = pd.DataFrame({"id": [f"C{i:05d}" for i in range(0, 20000, 7)]})
    blacklist["reason"] = np.where(np.arange(len(blacklist)) % 2 == 0, "fraud", "sanctions")
    blacklist.to_csv(data / "blacklist.csv", index=False)
    local = LocalFederation(fed, tmp, data_dir=data, heartbeat_interval=0.5, peer_dead_after=5.0, workers=1)
    local.start()
    try:
        yield local, data, {"income": income, "spend": spend, "keep": keep}
    finally:
        local.stop()


def _result(local: LocalFederation, party: str, job_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((output_dir(local, party, job_id) / "result.json").read_text())
    return out


def mpc_spec(statistic: str, layout: str, columns: dict[str, list[str]]) -> JobSpec:
    return JobSpec.from_dict(
        {
            "name": f"it-{statistic}",
            "kind": "mpc",
            "parties": {"bank": {"data": "bank.csv"}, "telco": {"data": "telco.csv"}, "regulator": {}},
            "mpc": {
                "compute": ["bank", "telco"],
                "results": ["regulator"],
                "dealer": "regulator",
                "statistic": statistic,
                "layout": layout,
                "columns": columns,
            },
        }
    )


def test_joint_mean_across_two_banks_goes_to_the_regulator_only(nodes: Any) -> None:
    local, data, _ = nodes
    outcome = run_job(local, mpc_spec("mean", "horizontal", {"bank": ["exposure"], "telco": ["exposure"]}))
    assert outcome.succeeded, outcome.views
    both = np.concatenate(
        [pd.read_csv(data / "bank.csv")["exposure"].to_numpy(), pd.read_csv(data / "telco.csv")["exposure"].to_numpy()]
    )
    value = _result(local, "regulator", outcome.job_id)["result"]["value"]
    assert value == pytest.approx(float(both.mean()), abs=1e-3)
    for party in ("bank", "telco"):
        assert "result" not in _result(local, party, outcome.job_id)


def test_pearson_of_psi_aligned_columns_of_two_parties(nodes: Any) -> None:
    local, _, truth = nodes
    outcome = run_job(local, mpc_spec("pearson", "vertical", {"bank": ["income"], "telco": ["spend"]}))
    assert outcome.succeeded, outcome.views
    keep = truth["keep"]
    expected = float(np.corrcoef(truth["income"][keep], truth["spend"][keep])[0, 1])
    assert _result(local, "regulator", outcome.job_id)["result"]["value"] == pytest.approx(expected, abs=1e-3)
    assert _result(local, "bank", outcome.job_id)["aligned_rows"] == len(keep)


@pytest.mark.parametrize("method", ["labeled_psi", "pir"])
def test_a_blacklist_query_answers_the_bank_and_tells_the_bureau_only_the_count(nodes: Any, method: str) -> None:
    local, data, _ = nodes
    asked = ["C00000", "C00007", "C00008", "C19999", "C19998", "C00014", "nobody"]
    pd.DataFrame({"id": asked}).to_csv(data / f"ask-{method}.csv", index=False)
    spec = JobSpec.from_dict(
        {
            "name": f"it-query-{method}",
            "kind": "query",
            "parties": {"bank": {"data": f"ask-{method}.csv"}, "bureau": {"data": "blacklist.csv", "label": "reason"}},
            "query": {"client": "bank", "server": "bureau", "method": method},
        }
    )
    outcome = run_job(local, spec, as_party="bank")
    assert outcome.succeeded, outcome.views
    table = pd.read_csv(output_dir(local, "bank", outcome.job_id) / "results.csv", keep_default_na=False)
    got = {
        i: (lab if found else None) for i, found, lab in zip(table["id"], table["found"], table["label"], strict=True)
    }
    assert got == {
        "C00000": "fraud",
        "C00007": "sanctions",
        "C00008": None,
        "C19999": "sanctions",  # the last of the 2,858 listed ids
        "C19998": None,
        "C00014": "fraud",
        "nobody": None,
    }
    bureau = _result(local, "bureau", outcome.job_id)
    assert bureau["role"] == "server" and "found" not in bureau
    assert not (output_dir(local, "bureau", outcome.job_id) / "results.csv").exists()
