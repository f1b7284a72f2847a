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
