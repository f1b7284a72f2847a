"""PSI benchmark: jointly's ECDH PSI between two node processes over loopback mutual-TLS gRPC,
against the ``openmined-psi`` package on the same id sets, in the same run.

    python benchmarks/psi.py [--quick] [--datasets 100k,1m]

Sets have 50% overlap (each side n ids, n/2 shared).  Our figure is wall time
from job submission to both parties finishing, including reading the CSVs,
hashing to the curve, every message over gRPC, and writing the result; both
parties share this machine's cores.  openmined-psi (P-256, Google's C++
implementation via its Python binding) runs client and server in one process
with no network, its messages counted by their serialised size; exact
intersection (raw data structure, no Bloom filter false positives).
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, parse_args, peak_mb_of, self_peak_mb, write_results
from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.data.io import write_table
from jointly.data.synthetic import overlapping_ids
from jointly.runtime.client import JobClient
from jointly.runtime.launcher import LocalFederation

DATASETS = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


def run_jointly(n: int, a: list[Any], b: list[Any], tmp: Path) -> Row:
    import pandas as pd

    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_table(pd.DataFrame({"id": a}), data / "a.csv")
    write_table(pd.DataFrame({"id": b}), data / "b.csv")
    fed = init_federation(["alice", "bob"], tmp / "fed", name="bench")
    spec = JobSpec.from_dict(
        {
            "name": "bench-psi",
            "kind": "psi",
            "parties": {"alice": {"data": "a.csv"}, "bob": {"data": "b.csv"}},
            "psi": {"mode": "intersection", "receivers": ["alice"]},
        }
    )
    with LocalFederation(fed, tmp, data_dir=data) as local, JobClient(local.federation, "alice") as client:
        start = time.perf_counter()
        job_id = client.submit(spec)
        outcome = client.watch(job_id, ["alice", "bob"], poll=0.1)
        seconds = time.perf_counter() - start
        peak = peak_mb_of(p.pid for p in local.processes.values())
    if not outcome.succeeded:
        raise SystemExit(f"jointly PSI failed: {outcome.failure()}")
    alice = outcome.views["alice"] or {}
    size = int(alice["result"]["intersection_size"])
    if size != n // 2:
        raise SystemExit(f"jointly PSI returned {size} common ids, expected {n // 2}")
    sent = sum(int((v or {}).get("bytes_sent", 0)) for v in outcome.views.values())
    return Row.timing(
        task="psi",
        dataset=f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}m",
        system="jointly",
        seconds=seconds,
        bytes_sent=sent,
        peak_mb=peak,
        params={
            "protocol": "ecdh-x25519",
            "n": n,
            "overlap": n // 2,
            "transport": "grpc-mtls-loopback",
            "intersection_size": size,
        },
    )


def _openmined(n: int, a: list[str], b: list[str], queue: Any) -> None:
    import private_set_intersection.python as psi

    start = time.perf_counter()
    server = psi.server.CreateWithNewKey(True)
    client = psi.client.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.0, len(b), a, psi.DataStructure.RAW)
    request = client.CreateRequest(b)
    response = server.ProcessRequest(request)
    found = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - start
    sent = len(setup.SerializeToString()) + len(request.SerializeToString()) + len(response.SerializeToString())
    queue.put({"seconds": seconds, "bytes": sent, "size": len(found), "peak_mb": self_peak_mb()})


def run_openmined(n: int, a: list[Any], b: list[Any]) -> Row | None:
    try:
        import private_set_intersection.python  # noqa: F401
    except ImportError:
        print("openmined-psi is not installed (make bench installs it); skipping the peer", file=sys.stderr)
        return None
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_openmined, args=(n, [str(x) for x in a], [str(x) for x in b], queue))
    proc.start()
    out = queue.get()
    proc.join()
    if out["size"] != n // 2:
        raise SystemExit(f"openmined-psi returned {out['size']} common ids, expected {n // 2}")
    return Row.timing(
        task="psi",
        dataset=f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}m",
        system="openmined-psi",
        seconds=out["seconds"],
        bytes_sent=out["bytes"],
        peak_mb=out["peak_mb"],
        params={
            "protocol": "ecdh-p256",
            "n": n,
            "overlap": n // 2,
            "transport": "in-process",
            "data_structure": "raw",
            "intersection_size": out["size"],
        },
    )


def main() -> None:
    _args, chosen = parse_args("psi", list(DATASETS), quick=["10k"])
    rows: list[Row] = []
    for name in chosen:
        n = DATASETS[name]
        a, b = overlapping_ids(n, n, n // 2, seed=42)
        print(f"psi {name}: {n:,} x {n:,} ids, {n // 2:,} in common", flush=True)
        with tempfile.TemporaryDirectory(prefix="jointly-bench-psi-") as tmp:
            ours = run_jointly(n, a, b, Path(tmp))
        rows.append(ours)
        print(
            f"  jointly        {ours.seconds:8.2f} s  {ours.bytes_sent / 1e6:9.1f} MB sent  peak {ours.peak_mb:7.0f} MB"
        )
        peer = run_openmined(n, a, b)
        if peer is not None:
            rows.append(peer)
            print(
                f"  openmined-psi  {peer.seconds:8.2f} s  {peer.bytes_sent / 1e6:9.1f} MB sent"
                f"  peak {peer.peak_mb:7.0f} MB"
            )
    out = write_results("psi", rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
