"""PSI between real node processes over loopback mutual-TLS gRPC."""

from __future__ import annotations

import json
import random
import time

import pandas as pd
import pytest

from jointly.config.federation import Federation, init_federation
from jointly.errors import JointlyError
from jointly.runtime.client import JobClient
from jointly.runtime.launcher import LocalFederation
from jointly.transport.grpc import ControlClient
from tests.integration.conftest import output_dir, psi_spec, run_job, write_ids

pytestmark = pytest.mark.integration


def _sets(sizes: dict[str, int], common: int, seed: int = 1) -> tuple[dict[str, list[str]], set[str]]:
    rng = random.Random(seed)
    shared = [f"C{rng.getrandbits(40):012d}" for _ in range(common)]
    sets = {}
    for party, size in sizes.items():
        own = [f"{party[0].upper()}{rng.getrandbits(40):012d}" for _ in range(size - common)]
        ids = shared + own
        rng.shuffle(ids)
        sets[party] = ids
    return sets, set(shared)


def _read_intersection(local: LocalFederation, party: str, job_id: str) -> set[str]:
    frame = pd.read_csv(output_dir(local, party, job_id) / "intersection.csv", dtype=str)
    return set(frame["id"])


def test_two_party_intersection_equals_plain_intersection(two_parties: LocalFederation) -> None:
    sets, expected = _sets({"bank": 3000, "telco": 2000}, common=700)
    files = {p: write_ids(two_parties.data_dir / f"two-{p}.csv", ids).name for p, ids in sets.items()}
    outcome = run_job(two_parties, psi_spec(files, receivers=["bank", "telco"]))
    assert outcome.succeeded, outcome.views
    for party in ("bank", "telco"):
        assert _read_intersection(two_parties, party, outcome.job_id) == expected
        result = json.loads((output_dir(two_parties, party, outcome.job_id) / "result.json").read_text())
        assert result["intersection_size"] == len(expected)
    assert all((v or {}).get("bytes_sent", 0) > 0 for v in outcome.views.values())


def test_cardinality_mode_reveals_only_the_size(two_parties: LocalFederation) -> None:
    sets, _ = _sets({"bank": 1500, "telco": 1200}, common=321, seed=2)
    files = {p: write_ids(two_parties.data_dir / f"card-{p}.csv", ids).name for p, ids in sets.items()}
    outcome = run_job(two_parties, psi_spec(files, mode="cardinality", receivers=["bank"]))
    assert outcome.succeeded, outcome.views
    bank_out = output_dir(two_parties, "bank", outcome.job_id)
    telco_out = output_dir(two_parties, "telco", outcome.job_id)
    assert json.loads((bank_out / "result.json").read_text())["intersection_size"] == 321
    assert not (bank_out / "intersection.csv").exists()
    telco_result = json.loads((telco_out / "result.json").read_text())
    assert "intersection_size" not in telco_result and not (telco_out / "intersection.csv").exists()


def test_partners_never_see_another_partys_result(two_parties: LocalFederation) -> None:
    sets, _ = _sets({"bank": 200, "telco": 200}, common=50, seed=3)
    files = {p: write_ids(two_parties.data_dir / f"vis-{p}.csv", ids).name for p, ids in sets.items()}
    outcome = run_job(two_parties, psi_spec(files, receivers=["telco"]))
    assert outcome.succeeded
    with JobClient(two_parties.federation, "bank") as client:
        telco_view = client.status("telco", outcome.job_id)
        own_view = client.status("bank", outcome.job_id)
    assert telco_view["state"] == "succeeded" and telco_view["result"] is None and telco_view["output_dir"] == ""
    assert own_view["result"] is not None and "intersection_size" not in own_view["result"]


def test_three_party_intersection(three_parties: LocalFederation) -> None:
    sets, expected = _sets({"bank": 900, "telco": 800, "insurer": 700}, common=250, seed=4)
    # give bank and telco extra ids in common that insurer lacks: they must not appear
    extra = [f"X{i:06d}" for i in range(40)]
    sets["bank"] += extra
    sets["telco"] += extra
    files = {p: write_ids(three_parties.data_dir / f"three-{p}.csv", ids).name for p, ids in sets.items()}
    outcome = run_job(three_parties, psi_spec(files, receivers=["bank", "insurer"]))
    assert outcome.succeeded, outcome.views
    assert _read_intersection(three_parties, "bank", outcome.job_id) == expected
    assert _read_intersection(three_parties, "insurer", outcome.job_id) == expected
    assert not (output_dir(three_parties, "telco", outcome.job_id) / "intersection.csv").exists()


def test_three_party_cardinality(three_parties: LocalFederation) -> None:
    sets, expected = _sets({"bank": 400, "telco": 500, "insurer": 450}, common=77, seed=5)
    files = {p: write_ids(three_parties.data_dir / f"three-card-{p}.csv", ids).name for p, ids in sets.items()}
    outcome = run_job(three_parties, psi_spec(files, mode="cardinality", receivers=["telco"]))
    assert outcome.succeeded, outcome.views
    result = json.loads((output_dir(three_parties, "telco", outcome.job_id) / "result.json").read_text())
    assert result["intersection_size"] == len(expected)


def test_a_peer_with_a_foreign_ca_is_refused(two_parties: LocalFederation, tmp_path) -> None:
    foreign = Federation.load(init_federation(["bank", "telco"], tmp_path / "foreign", name="evil"))
    # same party name, same address, but a certificate our CA never signed
    entry = two_parties.federation.party("bank")
    client = ControlClient(foreign, "telco", "bank", address=entry.address)
    try:
        with pytest.raises(JointlyError):
            client.call("health", {}, timeout=5)
    finally:
        client.close()
    # the real node is unaffected
    with JobClient(two_parties.federation, "telco") as real:
        assert real.health("bank")["party"] == "bank"


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "empty"),
        (b"name,x\nC1,1\n", "id column"),
        (b"id,x\nC1,1\nC2,2\nC1,3\n", "duplicate"),
        (b"id,x\nC1,1\n,2\n", "id"),
        (b"id,x\nC1,1\nC2,2,9\n", "field"),
        (b"id,x\nC1,1\n\xff\xfe,2\n", "UTF-8"),
    ],
    ids=["empty", "no-id-column", "duplicate-ids", "nan-id", "ragged", "not-utf8"],
)
def test_a_malformed_file_fails_the_job_cleanly_everywhere(
    two_parties: LocalFederation, content: bytes, problem: str
) -> None:
    good = write_ids(two_parties.data_dir / "good.csv", [f"C{i}" for i in range(100)])
    bad = two_parties.data_dir / f"bad-{problem}.csv"
    bad.write_bytes(content)
    outcome = run_job(two_parties, psi_spec({"bank": good.name, "telco": bad.name}))
    assert not outcome.succeeded
    telco = outcome.views["telco"]
    bank = outcome.views["bank"]
    assert telco is not None and bank is not None
    assert telco["state"] == "failed" and bank["state"] == "failed"
    assert telco["error"]["party"] == "telco" and telco["error"]["stage"] == "load"
    assert "DataError" in telco["error"]["reason"] and bad.name in telco["error"]["reason"]
    assert problem.lower() in telco["error"]["reason"].lower()
    # the partner names the party and stage that failed
    assert bank["error"]["party"] == "telco" and bank["error"]["stage"] == "load", bank["error"]
    # nothing half-written on either side
    for party in ("bank", "telco"):
        job_dir = two_parties.workdir(party) / "jobs" / outcome.job_id
        assert not (job_dir / "output").exists() and not (job_dir / "output.partial").exists()


@pytest.mark.slow
def test_killing_a_party_mid_job_stops_the_others_and_the_job_can_be_rerun(tmp_path) -> None:
    fed = init_federation(["bank", "telco", "insurer"], tmp_path / "fed", name="kill")
    data = tmp_path / "data"
    data.mkdir()
    sets, expected = _sets({"bank": 60_000, "telco": 60_000, "insurer": 60_000}, common=5000, seed=6)
    files = {p: write_ids(data / f"{p}.csv", ids).name for p, ids in sets.items()}
    spec = psi_spec(files, receivers=["bank"])
    local = LocalFederation(fed, tmp_path, data_dir=data, heartbeat_interval=0.5, peer_dead_after=5.0, workers=1)
    local.start()
    try:
        with JobClient(local.federation, "bank") as client:
            job_id = client.submit(spec)
            # wait until the protocol is under way, then kill telco's node
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                view = client.status("telco", job_id)
                if view["state"] == "running" and any(done > 0 for done, _ in view["progress"].values()):
                    break
                time.sleep(0.05)
            killed_at = time.monotonic()
            local.kill("telco")
            outcome = client.watch(job_id, ["bank", "insurer"], timeout=60)
            stopped_within = time.monotonic() - killed_at
        assert stopped_within < 30
        for party in ("bank", "insurer"):
            view = outcome.views[party]
            assert view is not None and view["state"] == "failed"
            assert view["error"]["party"] == "telco", view["error"]
            assert view["error"]["stage"] not in ("", "start")
        # no process hangs: the survivors are still healthy and the same job can be rerun
        local.start_party("telco")
        with JobClient(local.federation, "bank") as client:
            client.wait_ready(["telco"], timeout=30)
        rerun = run_job(local, spec)
        assert rerun.succeeded, rerun.views
        frame = pd.read_csv(output_dir(local, "bank", rerun.job_id) / "intersection.csv", dtype=str)
        assert set(frame["id"]) == expected
    finally:
        local.stop()
    for proc in local.processes.values():
        assert proc.poll() is not None
