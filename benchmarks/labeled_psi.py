"""Unbalanced labeled PSI benchmark: 1k client ids against a server's 1M (or 100k) labeled ids.

    python benchmarks/labeled_psi.py [--quick] [--datasets 100k,1m] [--repeats 3]

Half of the client's ids are in the server's set.  Three tasks per dataset:

* ``labeled_psi_preprocess``: the server's one-time preprocessing (hash every id
  to the curve under its key, derive tags and keys, seal labels, sort), seconds;
  ``bytes_sent`` is the encoded size of the publishable table.
* ``labeled_psi_online``: one query with the table already cached by the client:
  blind + evaluate + finish, *including* the safe-codec encode/decode of every
  message, client and server as two threads of one process over the in-memory
  channel (``MemoryHub``); the median of ``--repeats`` runs.  Worker pools for the
  curve arithmetic are already started (by preprocessing).
* ``labeled_psi_first_query``: the same with the table sent in the query.

Peer: ``openmined-psi`` (Google's C++ ECDH PSI over P-256 through its Python
binding), the same ids in the same run: ``CreateSetupMessage`` with the raw data
structure (exact, no false positives) as its preprocessing; as online query
``CreateRequest`` -> ``ProcessRequest`` -> ``GetIntersection`` on a cached setup, with
every protobuf serialised and parsed once, all in one process.  It answers
membership only (no labels) and, unlike ours, the client reprocesses the whole
setup message on every query.  Its rows run in a spawned child process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MemorySampler, Row, parse_args, self_peak_mb, write_results
from jointly.channel.codec import encode
from jointly.channel.memory import MemoryHub
from jointly.crypto.ecc import shutdown_pools
from jointly.data.synthetic import overlapping_ids
from jointly.protocols.psi.labeled import (
    LabeledPsiConfig,
    LabeledPsiServer,
    LabeledTable,
    run_labeled_psi_client,
    run_labeled_psi_server,
)

DATASETS = {"100k": 100_000, "1m": 1_000_000}
CLIENT_IDS = 1000
REASONS = [b"fraud", b"aml-watch", b"sanction", b"chargeback", b"mule", b"identity-theft"]


def make_data(n: int) -> tuple[dict[str, bytes], list[str]]:
    server_ids, client_ids = overlapping_ids(n, CLIENT_IDS, CLIENT_IDS // 2, seed=7)
    labels = {x: REASONS[i % len(REASONS)] + b":%06d" % (i % 1_000_000) for i, x in enumerate(server_ids)}
    return labels, client_ids


def _query(
    server: LabeledPsiServer, ids: list[str], cached: LabeledTable | None, config: LabeledPsiConfig
) -> tuple[float, int, dict[str, bytes | None]]:
    hub = MemoryHub(["client", "server"])
    start = time.perf_counter()
    out = hub.run(
        {
            "server": lambda ch: run_labeled_psi_server(ch, "client", server),
            "client": lambda ch: run_labeled_psi_client(ch, "server", ids, table=cached, config=config),
        },
        timeout=600,
    )
    seconds = time.perf_counter() - start
    found, _table = out["client"]  # type: ignore[misc]
    return seconds, sum(len(d) for *_, d in hub.log), found


def run_jointly(name: str, labels: dict[str, bytes], ids: list[str], repeats: int) -> list[Row]:
    n = len(labels)
    config = LabeledPsiConfig(max_query_ids=CLIENT_IDS)
    expected = {x: labels.get(x) for x in ids}
    with MemorySampler([os.getpid()]) as mem:
        start = time.perf_counter()
        server = LabeledPsiServer(labels, config=config)
        prep = time.perf_counter() - start
    table = server.table()
    table_bytes = len(encode(table))
    common = {
        "n_server": n,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "n_client": CLIENT_IDS,
        "present": CLIENT_IDS // 2,
        "curve": "x25519",
        "tag_bytes": table.tag_bytes,
        "label_bytes": table.label_bytes,
        "workers": os.cpu_count(),
    }
    rows = [
        Row.timing(
            task="labeled_psi_preprocess",
            dataset=name,
            system="jointly",
            seconds=prep,
            bytes_sent=table_bytes,
            peak_mb=mem.peak_mb,
            params={**common, "table_bytes": table_bytes, "bytes_per_id": table_bytes / n},
        )
    ]
    print(f"  jointly        preprocess {prep:8.2f} s  table {table_bytes / 1e6:7.1f} MB", flush=True)

    with MemorySampler([os.getpid()], interval=0.1) as mem:
        first, first_bytes, found = _query(server, ids, None, config)
    if found != expected:
        raise SystemExit("jointly labeled PSI returned wrong labels (first query)")
    rows.append(
        Row.timing(
            task="labeled_psi_first_query",
            dataset=name,
            system="jointly",
            seconds=first,
            bytes_sent=first_bytes,
            peak_mb=mem.peak_mb,
            params={**common, "transport": "MemoryHub threads, safe codec", "table_sent": True},
        )
    )
    print(f"  jointly        first query {first:7.3f} s  {first_bytes / 1e6:7.1f} MB", flush=True)

    times, sent = [], 0
    with MemorySampler([os.getpid()], interval=0.1) as mem:
        for _ in range(repeats):
            seconds, sent, found = _query(server, ids, table, config)
            if found != expected:
                raise SystemExit("jointly labeled PSI returned wrong labels (cached table)")
            times.append(seconds)
    online = statistics.median(times)
    rows.append(
        Row.timing(
            task="labeled_psi_online",
            dataset=name,
            system="jointly",
            seconds=online,
            bytes_sent=sent,
            peak_mb=mem.peak_mb,
            params={
                **common,
                "transport": "MemoryHub threads, safe codec",
                "table_sent": False,
                "runs": [round(t, 4) for t in times],
                "labels": True,
            },
        )
    )
    print(f"  jointly        online {online:7.3f} s  {sent / 1e3:7.1f} kB  runs {[round(t, 3) for t in times]}")
    return rows


def _openmined(server_ids: list[str], client_ids: list[str], repeats: int, queue: Any) -> None:
    import private_set_intersection.python as psi

    server = psi.server.CreateWithNewKey(True)
    start = time.perf_counter()
    setup = server.CreateSetupMessage(0.0, len(client_ids), server_ids, psi.DataStructure.RAW)
    setup_bytes = setup.SerializeToString()
    prep = time.perf_counter() - start
    cached = psi.ServerSetup()
    cached.ParseFromString(setup_bytes)
    times, sizes, found = [], 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        client = psi.client.CreateWithNewKey(True)
        wire_request = client.CreateRequest(client_ids).SerializeToString()
        request = psi.Request()
        request.ParseFromString(wire_request)
        wire_response = server.ProcessRequest(request).SerializeToString()
        response = psi.Response()
        response.ParseFromString(wire_response)
        found = len(client.GetIntersection(cached, response))
        times.append(time.perf_counter() - start)
        sizes = len(wire_request) + len(wire_response)
    queue.put(
        {
            "prep": prep,
            "setup_bytes": len(setup_bytes),
            "times": times,
            "bytes": sizes,
            "found": found,
            "peak_mb": self_peak_mb(),
        }
    )


def run_openmined(name: str, labels: dict[str, bytes], ids: list[str], repeats: int) -> list[Row]:
    try:
        import private_set_intersection.python  # noqa: F401
    except ImportError:
        print("openmined-psi is not installed (make bench installs it); skipping the peer", file=sys.stderr)
        return []
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_openmined, args=(list(labels), ids, repeats, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if out["found"] != CLIENT_IDS // 2:
        raise SystemExit(f"openmined-psi found {out['found']} ids, expected {CLIENT_IDS // 2}")
    common = {
        "n_server": len(labels),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "n_client": CLIENT_IDS,
        "present": CLIENT_IDS // 2,
        "curve": "p256",
        "data_structure": "raw",
        "labels": False,
        "threads": 1,
    }
    online = statistics.median(out["times"])
    print(f"  openmined-psi  preprocess {out['prep']:8.2f} s  setup {out['setup_bytes'] / 1e6:7.1f} MB")
    print(f"  openmined-psi  online {online:7.3f} s  runs {[round(t, 3) for t in out['times']]}")
    return [
        Row.timing(
            task="labeled_psi_preprocess",
            dataset=name,
            system="openmined-psi",
            seconds=out["prep"],
            bytes_sent=out["setup_bytes"],
            peak_mb=out["peak_mb"],
            params={**common, "table_bytes": out["setup_bytes"]},
        ),
        Row.timing(
            task="labeled_psi_online",
            dataset=name,
            system="openmined-psi",
            seconds=online,
            bytes_sent=out["bytes"],
            peak_mb=out["peak_mb"],
            params={
                **common,
                "transport": "in-process, protobuf serialise+parse",
                "runs": [round(t, 4) for t in out["times"]],
            },
        ),
    ]


def main() -> None:
    args, chosen = parse_args(
        "labeled_psi",
        list(DATASETS),
        quick=["100k"],
        extra=lambda p: p.add_argument("--repeats", type=int, default=3, help="online queries per system"),
    )
    rows: list[Row] = []
    for name in chosen:
        labels, ids = make_data(DATASETS[name])
        print(f"labeled psi {name}: {CLIENT_IDS:,} client ids vs {len(labels):,} server ids", flush=True)
        rows += run_jointly(name, labels, ids, args.repeats)
        shutdown_pools()
        rows += run_openmined(name, labels, ids, args.repeats)
    notes = [
        "jointly online = blind + evaluate + finish incl. codec encode/decode, client and server as threads over "
        "the in-memory channel, table cached; first_query also sends the table. Goal: online < 2 s for 1k vs 1M.",
        "openmined-psi answers membership only (no labels); P-256, one thread, in-process with protobuf "
        "serialise/parse; its client re-reads the whole raw setup message on every query.",
    ]
    out = write_results("labeled_psi", rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
