from __future__ import annotations

from pathlib import Path

import pytest

from jointly.config.job import JobSpec
from jointly.errors import ConfigError

GOOD = """
name: overlap
kind: psi
parties:
  bank: {data: bank.csv, id_column: customer_id}
  telco: {data: telco.csv}
psi: {mode: cardinality, receivers: [telco]}
"""


def test_load_yaml_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(GOOD)
    spec = JobSpec.load(path)
    assert spec.party_names == ("bank", "telco")
    assert spec.parties["telco"].id_column == "id"
    assert spec.psi_params.mode == "cardinality" and spec.psi_params.receivers == ("telco",)
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_receivers_default_to_the_first_party() -> None:
    spec = JobSpec.from_dict({"name": "x", "kind": "psi", "parties": {"b": {"data": "1"}, "a": {"data": "2"}}})
    assert spec.psi_params.receivers == ("b",)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("name: x\nkind: psi\nparties: {bank: {data: a}}\n", "at least two parties"),
        ("name: x\nkind: teleport\nparties: {a: {data: a}, b: {data: b}}\n", "kind"),
        ("name: x\nkind: psi\nparties: {a: {data: a}, b: {data: b}}\npsi: {receivers: [zed]}\n", "zed"),
        ("name: x\nkind: psi\nparties: {A B: {data: a}, b: {data: b}}\n", "invalid party names"),
        ("name: x\nkind: psi\nparties: {a: {data: a}, b: {data: b}}\nsurprise: 1\n", "surprise"),
        ("name: x\nkind: psi\nparties: {a: {data: a}, b: {data: b}}\npsi: {mode: fuzzy}\n", "psi.mode"),
        ("- just\n- a list\n", "mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_specs_name_the_file_and_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        JobSpec.load(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        JobSpec.load(tmp_path / "nope.yaml")


# -- vertical and predict jobs ----------------------------------------------------------------
def _vertical(**changes: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "name": "risk",
        "kind": "secureboost",
        "parties": {
            "bank": {"data": "bank.csv", "label": "y"},
            "telco": {"data": "telco.csv"},
        },
        "secureboost": {"n_trees": 3},
    }
    raw.update(changes)
    return raw


def test_a_vertical_job_finds_its_guest_and_hosts() -> None:
    spec = JobSpec.from_dict(_vertical())
    assert (spec.guest, spec.hosts, spec.arbiter) == ("bank", ("telco",), None)
    assert spec.model_params == {"n_trees": 3}
    assert spec.vertical_params.test_fraction == 0.2 and spec.vertical_params.align


def test_hetero_lr_with_an_arbiter_without_data() -> None:
    parties = {"bank": {"data": "b.csv", "label": "y"}, "telco": {"data": "t.csv"}, "arb": {}}
    spec = JobSpec.from_dict(
        _vertical(kind="hetero_lr", secureboost=None, parties=parties, vertical={"arbiter": "arb"})
    )
    assert spec.arbiter == "arb" and spec.data_parties == ("bank", "telco") and spec.hosts == ("telco",)


@pytest.mark.parametrize(
    "changes,problem",
    [
        ({"parties": {"bank": {"data": "b.csv"}, "telco": {"data": "t.csv"}}}, "exactly one party must name a 'label'"),
        (
            {"parties": {"bank": {"data": "b.csv", "label": "y"}, "telco": {"data": "t.csv", "label": "z"}}},
            "exactly one party",
        ),
        ({"vertical": {"guest": "telco"}}, "must name its 'label'"),
        ({"vertical": {"arbiter": "telco"}}, "has no arbiter"),
        ({"psi": {"mode": "intersection"}}, "cannot have section"),
        ({"vertical": {"test_fraction": 0.9}}, "test_fraction"),
        ({"parties": {"bank": {"data": "b.csv", "label": "y"}, "telco": {}}}, "need 'data'"),
    ],
)
def test_bad_vertical_jobs_are_config_errors(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        JobSpec.from_dict(_vertical(**changes))


def test_a_predict_job_names_its_model_and_a_psi_job_takes_no_labels() -> None:
    parties = {"bank": {"data": "b.csv"}, "telco": {"data": "t.csv"}}
    spec = JobSpec.from_dict({"name": "score", "kind": "predict", "parties": parties, "predict": {"model": "risk-1"}})
    assert spec.predict is not None and spec.predict.model == "risk-1"
    with pytest.raises(ConfigError, match="needs a 'predict' section"):
        JobSpec.from_dict({"name": "score", "kind": "predict", "parties": parties})
    labelled = {"bank": {"data": "b.csv", "label": "y"}, "telco": {"data": "t.csv"}}
    with pytest.raises(ConfigError, match="uses no labels"):
        JobSpec.from_dict({"name": "p", "kind": "psi", "parties": labelled})
    with pytest.raises(ConfigError, match="cannot have a 'vertical' section"):
        JobSpec.from_dict({"name": "p", "kind": "psi", "parties": parties, "vertical": {}})
