"""Integration fixtures: real node processes on loopback, talking mutual-TLS gRPC."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.runtime.client import JobClient, JobOutcome
from jointly.runtime.launcher import LocalFederation

HEARTBEAT = 0.5
DEAD_AFTER = 5.0


def write_ids(path: Path, ids: Sequence[object], column: str = "id") -> Path:
    pd.DataFrame({column: [str(i) for i in ids], "x": range(len(ids))}).to_csv(path, index=False)
    return path


def psi_spec(files: dict[str, str], *, mode: str = "intersection", receivers: Sequence[str] = ()) -> JobSpec:
    return JobSpec.from_dict(
        {
            "name": "it-psi",
            "kind": "psi",
            "parties": {p: {"data": f, "id_column": "id"} for p, f in files.items()},
            "psi": {"mode": mode, "receivers": list(receivers), "batch_size": 4096},
        }
    )


def run_job(local: LocalFederation, spec: JobSpec, *, as_party: str | None = None) -> JobOutcome:
    party = as_party or spec.party_names[0]
    with JobClient(local.federation, party) as client:
        job_id = client.submit(spec)
        return client.watch(job_id, list(spec.party_names), unreachable_grace=30, timeout=240)


def output_dir(local: LocalFederation, party: str, job_id: str) -> Path:
    return local.workdir(party) / "jobs" / job_id / "output"


def _federation(tmp: Path, parties: list[str]) -> Iterator[LocalFederation]:
    fed = init_federation(parties, tmp / "fed", name="it")
    data = tmp / "data"
    data.mkdir()
    local = LocalFederation(
        fed, tmp, data_dir=data, heartbeat_interval=HEARTBEAT, peer_dead_after=DEAD_AFTER, workers=1
    )
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def two_parties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    yield from _federation(tmp_path_factory.mktemp("two"), ["bank", "telco"])


@pytest.fixture(scope="module")
def three_parties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    yield from _federation(tmp_path_factory.mktemp("three"), ["bank", "telco", "insurer"])
