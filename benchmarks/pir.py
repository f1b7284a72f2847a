"""PIR benchmark: jointly's SimplePIR-style index PIR and keyword PIR, in one process.

    python benchmarks/pir.py [--quick] [--datasets 1m_x_32B,100k_x_1KiB]

For each database (random records) the server preprocesses once (the hint, BLAS on every
core), then a client makes ``--queries`` queries for random indices and checks every record.
Rows (system ``jointly``; no peer: no maintained SimplePIR package exists on PyPI):

* ``seconds``: median latency of one query end to end (client query + server answer +
  client decode), no network; ``bytes_sent`` = query + answer as encoded on the wire.
* ``server_seconds``: median wall time of one server answer, with numpy/BLAS pinned to one
  thread via threadpoolctl.
* ``gb_per_s_per_core``: database bytes scanned per core-second: bytes / median CPU time of
  the answering thread (``time.thread_time``; with one BLAS thread all work runs in it), so
  other jobs time-sharing the cores do not count against us; ``params.wall`` is bytes /
  median wall time, ``params.best_cpu`` the figure for the fastest query.
* ``batch_gb_per_s_per_core``: the same for a batch of 64 queries answered in one pass
  (database bytes x 64 / CPU time), as a keyword-PIR session of many keys does.
* ``setup_bytes``: size of the encoded setup (the hint dominates); ``seconds`` is the setup time.
* ``keyword_seconds`` (the ``*_kw`` datasets): median latency of one keyword lookup end to end.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, parse_args, self_peak_mb, write_results
from jointly.channel.codec import encode
from jointly.protocols.pir import KeywordPirClient, KeywordPirServer, PirClient, PirServer

#: name -> (records, record bytes, keyword?)
DATASETS = {
    "1m_x_32B": (1_000_000, 32, False),
    "100k_x_1KiB": (100_000, 1024, False),
    "1m_x_32B_kw": (1_000_000, 32, True),
    "10k_x_32B": (10_000, 32, False),
    "10k_x_32B_kw": (10_000, 32, True),
}
QUICK = ["10k_x_32B", "10k_x_32B_kw"]
BATCH = 64


def _extra(parser: object) -> None:
    parser.add_argument("--queries", type=int, default=15, help="queries per database (median reported)")  # type: ignore[attr-defined]


def bench_index(name: str, n: int, size: int, queries: int) -> list[Row]:
    rng = np.random.default_rng(0)
    records = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    server = PirServer(records, record_bytes=size)
    start = time.perf_counter()
    setup = server.setup()
    setup_seconds = time.perf_counter() - start
    setup_bytes = len(encode(setup))
    client = PirClient(setup)
    p = server.params
    params = {
        "records": n,
        "record_bytes": size,
        "rows": p.rows,
        "cols": p.cols,
        "lwe_n": p.lwe_n,
        "log_q": p.log_q,
        "log_p": p.log_p,
        "sigma": p.sigma,
        "failure_log2": round(p.failure_log2),
        "queries": queries,
        "db_bytes": server.db_bytes,
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    total, online, cpu, sizes = [], [], [], []
    for index in rng.integers(0, n, size=queries):
        t0 = time.perf_counter()
        query, state = client.query(int(index))
        t1 = time.perf_counter()
        with threadpool_limits(1):
            c2, t2 = time.thread_time(), time.perf_counter()
            answer = server.answer(query)
            t3, c3 = time.perf_counter(), time.thread_time()
        record = client.decode(answer, state)
        t4 = time.perf_counter()
        if record != records[index].tobytes():
            raise SystemExit(f"{name}: wrong record for index {index}")
        online.append(t3 - t2)
        cpu.append(c3 - c2)
        total.append((t1 - t0) + (t3 - t2) + (t4 - t3))
        sizes.append(len(encode(query)) + len(encode(answer)))
    batch = [client.query(int(i))[0] for i in rng.integers(0, n, size=BATCH)]
    with threadpool_limits(1):
        c0, t0 = time.thread_time(), time.perf_counter()
        server.answer_batch(batch)
        batch_seconds, batch_cpu = time.perf_counter() - t0, time.thread_time() - c0
    latency, answer_s, answer_cpu = statistics.median(total), statistics.median(online), statistics.median(cpu)
    peak = self_peak_mb()
    comm = max(sizes)

    def row(metric: str, value: float, seconds: float, sent: int, **extra: object) -> Row:
        return Row("pir_index", name, "jointly", metric, value, seconds, sent, peak, {**params, **extra})

    return [
        row("seconds", latency, latency, comm, query_bytes=p.query_bytes, answer_bytes=p.answer_bytes),
        row("server_seconds", answer_s, answer_s, comm, threads=1, best=min(online), cpu_seconds=answer_cpu),
        row(
            "gb_per_s_per_core",
            server.db_bytes / answer_cpu / 1e9,
            answer_s,
            comm,
            threads=1,
            cpu_seconds=answer_cpu,
            best_cpu=server.db_bytes / min(cpu) / 1e9,
            wall=server.db_bytes / answer_s / 1e9,
        ),
        row(
            "batch_gb_per_s_per_core",
            BATCH * server.db_bytes / batch_cpu / 1e9,
            batch_seconds,
            BATCH * comm,
            threads=1,
            batch=BATCH,
            cpu_seconds=batch_cpu,
            wall=BATCH * server.db_bytes / batch_seconds / 1e9,
        ),
        row("setup_bytes", setup_bytes, setup_seconds, setup_bytes, threads=os.cpu_count()),
    ]


def bench_keyword(name: str, n: int, size: int, queries: int) -> list[Row]:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    items = {f"customer-{i:09d}".encode(): values[i].tobytes() for i in range(n)}
    start = time.perf_counter()
    server = KeywordPirServer(items, value_bytes=size)
    setup = server.setup()
    setup_seconds = time.perf_counter() - start
    setup_bytes = len(encode(setup))
    client = KeywordPirClient(setup)
    p = server.pir.params
    keys = [f"customer-{i:09d}".encode() for i in rng.integers(0, n, size=queries)]
    keys[::3] = [f"stranger-{i}".encode() for i in range(len(keys[::3]))]
    total, sizes = [], []
    for key in keys:
        t0 = time.perf_counter()
        qs, state = client.query(key)
        with threadpool_limits(1):
            answers = server.answer(qs)
        value = client.decode(answers, state)
        total.append(time.perf_counter() - t0)
        if value != items.get(key):
            raise SystemExit(f"{name}: wrong value for {key!r}")
        sizes.append(sum(len(encode(q)) for q in qs) + sum(len(encode(a)) for a in answers))
    latency = statistics.median(total)
    params = {
        "items": n,
        "value_bytes": size,
        "buckets": server.buckets,
        "capacity": server.capacity,
        "rows": p.rows,
        "cols": p.cols,
        "db_bytes": server.db_bytes,
        "queries": queries,
        "threads_server": 1,
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    peak = self_peak_mb()
    return [
        Row("pir_keyword", name, "jointly", "seconds", latency, latency, max(sizes), peak, params),
        Row("pir_keyword", name, "jointly", "setup_bytes", setup_bytes, setup_seconds, setup_bytes, peak, params),
    ]


def main() -> None:
    args, chosen = parse_args("pir", list(DATASETS), QUICK, extra=_extra)
    rows: list[Row] = []
    for name in chosen:
        n, size, keyword = DATASETS[name]
        out = (bench_keyword if keyword else bench_index)(name, n, size, args.queries)
        for r in out:
            print(f"{r.task:12s} {r.dataset:14s} {r.metric:24s} {r.value:12.4g}  ({r.seconds:.4f} s)", flush=True)
        rows += out
    notes = [
        "No peer system: there is no maintained SimplePIR implementation on PyPI; rows are jointly's only.",
        "server_seconds: wall time of one server answer with numpy/BLAS pinned to 1 thread (threadpoolctl).",
        "gb_per_s_per_core: DB bytes (the padded rows x cols byte matrix) / CPU seconds of the answering"
        " thread (core-seconds; params.wall = the same over wall time).",
        "seconds: one query end to end in one process (client query + server answer + decode), no network.",
        "value = median over the queries; params.best = the fastest one; params.load_avg_1m = machine load"
        " (other jobs share this 2-core machine, which slows the memory-bound scan).",
        "setup: hint = D A mod 2^32 computed once with BLAS on all cores; the client caches it.",
        "LWE n=1024, q=2^32, sigma=6.4 (SimplePIR's parameters, ~128-bit per the lattice estimator), p=2^8.",
    ]
    write_results("pir", rows, notes=notes)


if __name__ == "__main__":
    main()
