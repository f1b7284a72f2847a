"""Audit-ledger benchmark: jointly's signed RFC 9162 Merkle log against ``pymerkle``, same entries, same run.

    python benchmarks/ledger.py [--quick] [--datasets 100k,1m]

What is measured, on one party's log of n job-event entries (about 400 bytes each:
a job id, an event, a stage, two SHA-256 hex digests and two counts):

* ``append_signed``   jointly ``Ledger.append``: build + canonically encode the entry, Ed25519-sign it,
                      store it (in-memory store) and add its leaf to the Merkle tree;
* ``tree_append``     the Merkle tree alone, appending the same signed-entry bytes one by one
                      (jointly ``MerkleTree.append`` vs pymerkle ``InmemoryTree.append_entry``; the roots
                      are checked equal: both follow RFC 9162's hashing);
* ``inclusion_proof`` / ``consistency_proof``: proof size in bytes (mean over 1,000 random indices /
                      old sizes against the full tree) and the time to make them;
* ``inclusion_verify`` / ``consistency_verify``: microseconds to verify one proof;
* ``verify_full``     ``verify_store``: decode every entry, check every signature and position, rebuild
                      the tree, check every head and cosignature (jointly only: pymerkle has no signatures);
* ``replicate``       a partner's ``Replica.accept`` of the whole log (signature and seq of every entry,
                      consistency proof, root), with the bytes the update takes on the wire.

Each system runs in its own process (spawned), so ``peak_mb`` is that system's
peak resident size; jointly's includes the n signed entries held in memory.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import random
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, parse_args, self_peak_mb, write_results

DATASETS = {"100k": 100_000, "1m": 1_000_000}
PROOFS = 1000
EVENTS = ("proposed", "approved", "started", "stage", "stage", "stage", "finished", "model_stored")


class RichProgress:
    """jointly.progress.Progress over a rich progress bar (one bar per task name)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("  {task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, task: str, done: int, total: int) -> None:
        if task not in self._tasks:
            self._tasks[task] = self._bar.add_task(task, total=total)
        self._bar.update(self._tasks[task], completed=done, total=total)


class _Clock:
    """Wall and CPU time of one phase (CPU time is what the phase cost even when the machine is shared)."""

    def __init__(self, out: dict[str, Any], name: str) -> None:
        self.out, self.name = out, name

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.out[f"{self.name}_seconds"] = time.perf_counter() - self.wall
        self.out[f"{self.name}_cpu"] = time.process_time() - self.cpu


def _event(i: int) -> tuple[str, str, str, dict[str, Any]]:
    digest = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
    return (
        f"job-{i // 64:06d}",
        EVENTS[i % len(EVENTS)],
        f"secureboost/tree-{i % 50}/layer-{i % 6}",
        {"sent_sha256": digest, "received_sha256": digest[::-1], "messages": i % 17, "bytes": 1000 + i % 9973},
    )


def _samples(n: int, seed: int = 7) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    return [rng.randrange(n) for _ in range(PROOFS)], [rng.randrange(1, n) for _ in range(PROOFS)]


def _jointly(n: int, path: str, queue: Any) -> None:
    from jointly.audit.ledger import Ledger
    from jointly.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
    from jointly.audit.replica import Replica
    from jointly.audit.store import MemoryLedgerStore
    from jointly.audit.verify import verify_store
    from jointly.crypto.signing import SigningKey

    alice, bob = SigningKey.generate(), SigningKey.generate()
    store = MemoryLedgerStore()
    ledger = Ledger("alice", alice, store)
    out: dict[str, Any] = {"n": n}
    with RichProgress() as progress:
        with _Clock(out, "append"):
            for i in range(n):
                job_id, event, stage, data = _event(i)
                ledger.append(job_id, event, stage, data)
                if i % 4096 == 0:
                    progress.update("append (signed)", i, n)
        head = ledger.head()
        entries = store.entries("alice")
        out["entry_bytes"] = sum(len(e) for e in entries) / n
        out["root"] = head.root.hex()
        with open(path, "wb") as fh:
            for raw in entries:
                fh.write(struct.pack(">I", len(raw)))
                fh.write(raw)

        tree = MerkleTree()
        with _Clock(out, "tree"):
            for i, raw in enumerate(entries):
                tree.append(raw)
                if i % 65536 == 0:
                    progress.update("tree append", i, n)
        if tree.root() != head.root:
            raise SystemExit("jointly: incremental tree root differs from the ledger's")
        start = time.perf_counter()
        bulk = MerkleTree.from_leaf_hashes([leaf_hash(raw) for raw in entries])
        out["bulk_seconds"] = time.perf_counter() - start
        if bulk.root() != head.root:
            raise SystemExit("jointly: bulk-built tree root differs")

        indices, olds = _samples(n)
        start = time.perf_counter()
        inclusion = [tree.inclusion_proof(i) for i in indices]
        out["inclusion_make"] = time.perf_counter() - start
        leaves = [tree.leaf(i) for i in indices]
        start = time.perf_counter()
        ok = all(
            verify_inclusion(leaf, i, n, p, head.root) for leaf, i, p in zip(leaves, indices, inclusion, strict=True)
        )
        out["inclusion_verify"] = time.perf_counter() - start
        out["inclusion_bytes"] = sum(32 * len(p) for p in inclusion) / PROOFS
        start = time.perf_counter()
        consistency = [tree.consistency_proof(m) for m in olds]
        out["consistency_make"] = time.perf_counter() - start
        roots = [tree.root(m) for m in olds]
        start = time.perf_counter()
        ok &= all(verify_consistency(m, n, p, r, head.root) for m, p, r in zip(olds, consistency, roots, strict=True))
        out["consistency_verify"] = time.perf_counter() - start
        out["consistency_bytes"] = sum(32 * len(p) for p in consistency) / PROOFS
        if not ok:
            raise SystemExit("jointly: a proof did not verify")

        keys = {"alice": alice.verify_key, "bob": bob.verify_key}
        with _Clock(out, "verify"):
            report = verify_store(store, keys, holder="alice", progress=progress)
        if not report.ok:
            raise SystemExit(f"jointly: verification failed: {report.problems[:3]}")

    update = ledger.update_since(0)
    out["update_bytes"] = sum(len(e) for e in update.entries) + len(update.head) + 32 * len(update.proof)
    print("  replicating the whole log to a partner ...", file=sys.stderr, flush=True)
    with _Clock(out, "replicate"):
        replica = Replica("bob", bob, MemoryLedgerStore())
        replica.accept("alice", alice.verify_key, update.entries, update.head, update.proof)
    out["peak_mb"] = self_peak_mb()
    queue.put(out)


def _pymerkle(n: int, path: str, queue: Any) -> None:
    import pymerkle
    from pymerkle import InmemoryTree, verify_consistency, verify_inclusion

    entries = []
    with open(path, "rb") as fh:
        while header := fh.read(4):
            entries.append(fh.read(struct.unpack(">I", header)[0]))
    out: dict[str, Any] = {"version": pymerkle.__version__, "n": n}
    tree = InmemoryTree()
    with RichProgress() as progress, _Clock(out, "tree"):
        for i, raw in enumerate(entries):
            tree.append_entry(raw)
            if i % 65536 == 0:
                progress.update("pymerkle append", i, n)
    out["root"] = tree.get_root().hex()
    indices, olds = _samples(n)
    start = time.perf_counter()
    inclusion = [tree.prove_inclusion(i + 1) for i in indices]  # pymerkle counts leaves from one
    out["inclusion_make"] = time.perf_counter() - start
    leaves = [tree.get_leaf(i + 1) for i in indices]
    root = tree.get_root()
    start = time.perf_counter()
    for leaf, proof in zip(leaves, inclusion, strict=True):
        verify_inclusion(leaf, root, proof)
    out["inclusion_verify"] = time.perf_counter() - start
    out["inclusion_bytes"] = sum(32 * len(p.path) for p in inclusion) / PROOFS
    out["inclusion_json"] = sum(len(str(p.serialize())) for p in inclusion) / PROOFS
    start = time.perf_counter()
    consistency = [tree.prove_consistency(m) for m in olds]
    out["consistency_make"] = time.perf_counter() - start
    roots = [tree.get_root(m) for m in olds]
    start = time.perf_counter()
    for r, proof in zip(roots, consistency, strict=True):
        verify_consistency(r, root, proof)
    out["consistency_verify"] = time.perf_counter() - start
    out["consistency_bytes"] = sum(32 * len(p.path) for p in consistency) / PROOFS
    out["consistency_json"] = sum(len(str(p.serialize())) for p in consistency) / PROOFS
    out["peak_mb"] = self_peak_mb()
    queue.put(out)


def _run(target: Any, n: int, path: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(n, path, queue))
    proc.start()
    while proc.is_alive() and queue.empty():
        proc.join(0.5)
    if queue.empty():
        raise SystemExit(f"{target.__name__} exited with code {proc.exitcode} and no result")
    out: dict[str, Any] = queue.get()
    proc.join()
    return out


def _proof_rows(dataset: str, system: str, n: int, r: dict[str, Any], extra: dict[str, Any]) -> list[Row]:
    rows = []
    for kind in ("inclusion", "consistency"):
        params = {"n": n, "proofs": PROOFS, **extra}
        if f"{kind}_json" in r:
            params["serialized_chars"] = round(r[f"{kind}_json"])
        rows.append(
            Row(
                f"{kind}_proof",
                dataset,
                system,
                "bytes",
                r[f"{kind}_bytes"],
                r[f"{kind}_make"],
                0,
                r["peak_mb"],
                params,
            )
        )
        rows.append(
            Row(
                f"{kind}_verify",
                dataset,
                system,
                "us_per_proof",
                r[f"{kind}_verify"] / PROOFS * 1e6,
                r[f"{kind}_verify"],
                0,
                r["peak_mb"],
                {"n": n, "proofs": PROOFS, **extra},
            )
        )
    return rows


def ledger_rows(dataset: str, n: int) -> list[Row]:
    print(f"ledger {dataset}: {n:,} entries", flush=True)
    with tempfile.TemporaryDirectory(prefix="jointly-bench-ledger-") as tmp:
        path = str(Path(tmp) / "entries.bin")
        ours = _run(_jointly, n, path)
        try:
            import pymerkle  # noqa: F401

            peer: dict[str, Any] | None = _run(_pymerkle, n, path)
        except ImportError:
            print("pymerkle is not installed (make bench installs it); skipping the peer", file=sys.stderr)
            peer = None
    base = {"n": n, "entry_bytes": round(ours["entry_bytes"], 1), "hash": "sha256", "rfc9162": True}
    rows = [
        Row(
            "append_signed",
            dataset,
            "jointly",
            "entries_per_s",
            n / ours["append_seconds"],
            ours["append_seconds"],
            0,
            ours["peak_mb"],
            {**base, **_cpu(ours, "append"), "signature": "ed25519", "store": "memory"},
        ),
        Row(
            "tree_append",
            dataset,
            "jointly",
            "entries_per_s",
            n / ours["tree_seconds"],
            ours["tree_seconds"],
            0,
            ours["peak_mb"],
            {**base, **_cpu(ours, "tree"), "bulk_build_seconds": round(ours["bulk_seconds"], 3)},
        ),
        *_proof_rows(dataset, "jointly", n, ours, {}),
        Row(
            "verify_full",
            dataset,
            "jointly",
            "entries_per_s",
            n / ours["verify_seconds"],
            ours["verify_seconds"],
            0,
            ours["peak_mb"],
            {**base, **_cpu(ours, "verify"), "checks": "decode+ed25519+seq+tree+heads+cosignatures"},
        ),
        Row(
            "replicate",
            dataset,
            "jointly",
            "entries_per_s",
            n / ours["replicate_seconds"],
            ours["replicate_seconds"],
            ours["update_bytes"],
            ours["peak_mb"],
            {**base, **_cpu(ours, "replicate"), "checks": "decode+ed25519+seq+consistency+root"},
        ),
    ]
    print(
        f"  jointly   append {n / ours['append_seconds']:>9,.0f}/s  tree {n / ours['tree_seconds']:>10,.0f}/s  "
        f"verify {ours['verify_seconds']:7.1f} s  replicate {ours['replicate_seconds']:7.1f} s  "
        f"peak {ours['peak_mb']:6.0f} MB"
    )
    if peer is not None:
        if peer["root"] != ours["root"]:
            raise SystemExit("pymerkle's root differs from jointly's on the same entries")
        extra = {"version": peer["version"], "root_matches": True}
        rows.append(
            Row(
                "tree_append",
                dataset,
                "pymerkle",
                "entries_per_s",
                n / peer["tree_seconds"],
                peer["tree_seconds"],
                0,
                peer["peak_mb"],
                {**base, **extra, **_cpu(peer, "tree"), "backend": "InmemoryTree"},
            )
        )
        rows += _proof_rows(dataset, "pymerkle", n, peer, extra)
        print(f"  pymerkle  tree {n / peer['tree_seconds']:>10,.0f}/s  peak {peer['peak_mb']:6.0f} MB")
    return rows


def _cpu(r: dict[str, Any], name: str) -> dict[str, float]:
    """CPU seconds of a phase and the rate they give (entries per CPU second)."""
    cpu = r[f"{name}_cpu"]
    return {"cpu_seconds": round(cpu, 3), "entries_per_cpu_s": round(r["n"] / cpu, 1) if cpu > 0 else 0.0}


def api_rows(quick: bool) -> list[dict[str, Any]]:
    """REST API latency with 10k jobs in a node's store (1k with --quick): list pages and single jobs.

    A real node (SQLite store, FastAPI app, uvicorn on loopback, no peers needed for reads) is
    measured over HTTP with httpx, as the dashboard and the CLI call it.  No peer system: FATE's
    FATE-Board/flow API is not installable here, so these rows are ours alone.
    """
    import httpx

    from jointly.config.federation import Federation, init_federation
    from jointly.node.http import ApiServer
    from jointly.node.records import JobRecord
    from jointly.node.service import Node
    from jointly.node.services.local import LocalNodeServices
    from jointly.web.app import create_app

    n_jobs = 1_000 if quick else 10_000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jointly-bench-api-") as tmp:
        root = Path(tmp)
        fed = Federation.load(init_federation(["bank", "telco"], root / "fed", name="bench-api"))
        node = Node(fed, "bank", workdir=root / "bank", data_dir=root)
        token = node.storage.users.create("bench", "analyst")
        spec = {"name": "overlap", "kind": "psi", "parties": {"bank": {"data": "a.csv"}, "telco": {"data": "b.csv"}}}
        started = time.perf_counter()
        for i in range(n_jobs):
            state = ("succeeded", "failed", "pending", "running")[i % 4]
            record = JobRecord(job_id=f"job-{i:06d}", spec=spec, initiator="bank", party="bank", state=state)
            record.name, record.kind = "overlap", "psi"
            node.store.add(record)
        fill = time.perf_counter() - started
        api = ApiServer(create_app(LocalNodeServices(node)))
        api.start()
        try:
            with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as client:
                probes = {
                    "list_jobs_page": lambda i: client.get(
                        "/api/jobs", params={"limit": 50, "offset": (i * 50) % n_jobs}
                    ),
                    "list_jobs_by_state": lambda i: client.get("/api/jobs", params={"state": "pending", "limit": 50}),
                    "get_job": lambda i: client.get(f"/api/jobs/job-{(i * 7919) % n_jobs:06d}"),
                }
                for task, probe in probes.items():
                    for i in range(5):  # warm up
                        probe(i).raise_for_status()
                    times = []
                    total = 0
                    for i in range(200):
                        t0 = time.perf_counter()
                        reply = probe(i)
                        times.append(time.perf_counter() - t0)
                        reply.raise_for_status()
                        total += len(reply.content)
                    times.sort()
                    p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
                    rows.append(
                        {
                            "task": task,
                            "dataset": f"{n_jobs // 1000}k_jobs",
                            "system": "jointly",
                            "params": {
                                "jobs": n_jobs,
                                "requests": len(times),
                                "p95_ms": round(p95 * 1e3, 2),
                                "bytes_per_reply": total // len(times),
                                "store_fill_seconds": round(fill, 2),
                            },
                            "metric": "p50_ms",
                            "value": round(p50 * 1e3, 2),
                            "seconds": round(sum(times), 3),
                            "bytes_sent": total,
                            "peak_mb": round(self_peak_mb(), 1),
                        }
                    )
                    print(f"  api {task:<20} p50 {p50 * 1e3:7.2f} ms  p95 {p95 * 1e3:7.2f} ms")
        finally:
            api.stop()
            node.storage.close()
    return rows


def main() -> None:
    _args, chosen = parse_args("ledger", list(DATASETS), quick=["100k"])
    rows: list[Row] = []
    for name in chosen:
        rows += ledger_rows(name, DATASETS[name])
    for extra in api_rows(_args.quick):
        rows.append(Row(**extra))
    notes = [
        "Entries are ~400-byte job events; proofs are against the full tree (mean over 1,000 random indices/sizes).",
        "Proof bytes count the 32-byte hashes only; pymerkle's inclusion path also carries the leaf hash itself,",
        "and its serialized proof (JSON-ish dict) size is in params.serialized_chars.",
        "`append_signed`, `verify_full` and `replicate` include Ed25519 signing/verification; pymerkle has no",
        "signatures, so it is compared on `tree_append` and proofs only. Each system runs in its own process.",
    ]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    notes.append(
        f"Load average when the run ended: {load} on {os.cpu_count()} cores; params.cpu_seconds is each phase's"
    )
    notes.append("CPU time, which does not depend on what else the machine was running.")
    out = write_results("ledger", rows, notes=notes)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
