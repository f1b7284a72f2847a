"""Horizontal federated learning benchmark: jointly (an aggregator and N client node processes over
loopback mutual-TLS gRPC) against Flower, run two ways (its Simulation Runtime on Ray, and its local
deployment: a SuperLink and N SuperNodes), with the same model, the same data split, the same local
training and the same seeds, with and without secure aggregation.

    python benchmarks/horizontal.py [--quick] [--datasets digits_iid,digits_dirichlet,default_credit_homo]
                                    [--clients 5,10] [--rounds 20] [--no-flower] [--no-secagg]
                                    [--flower-modes simulation,deployment] [--flower-short 3] [--repeat 3]

Data:
* ``digits_iid`` / ``digits_dirichlet``: scikit-learn's digits (8x8 images scaled to [0, 1], 10
  classes).  20% is held out (stratified, seed 0) as the test set; the training rows and the test
  rows are each split over the clients with ``jointly.data.federated`` (``iid_partition`` or
  ``dirichlet_partition`` with ``alpha=0.5``, seed 0).  Model: jointly's small CNN
  (``cnn``, 10 classes).
* ``default_credit_homo``: FATE's homogeneous split of default-credit (``../shared/data/fate/
  default_credit_homo_{guest,host_1,host_2}.csv``, label ``y``, 23 features): three clients, each
  holding out 20% of its rows for testing (jointly's ``test_fraction``, public seed).  Model: an MLP
  with one hidden layer of 64 and a single logit.  The features are already standardised by FATE, so
  the job's own standardisation is off (Flower has none).

Both systems: FedAvg weighted by examples, every client every round, 1 local epoch, batch 32, SGD
lr 0.05 momentum 0.9, initial model ``torch.manual_seed(0)``, each client's round seeded the same way,
one torch thread per client.  Flower's clients train with jointly's ``Trainer`` on the very arrays
jointly's clients load (written by jointly's own loader), so the only differences are the frameworks.
jointly evaluates federatedly (each client scores the global model on its test rows; the aggregator
combines the counts), Flower centrally on the union of those test rows: the same number.

Reported per configuration (``params``): ``startup_seconds`` (job submission to the first round:
jointly's ``submit`` until its aggregator reports federated training, polled every 0.1 s, on nodes
that have run one job before; Flower's ``flwr run`` (or ``run_simulation``) until its first
``configure_fit``, with the SuperLink and SuperNodes up -- from launching them it is
``cold_start_seconds``), the cold start of jointly's nodes (``nodes_start_seconds``,
``nodes_warm_seconds``: launch until every node answers / has loaded torch and the learning runtime;
``cold_startup_seconds``: the start-up of the nodes' first job, submitted once they are warm),
``launch_to_first_round_done_seconds`` (both systems: from launching every process, nothing
running, to the end of the first job's first round), ``single_node_start_seconds`` /
``single_node_warm_seconds`` (one node launched alone, as on a party's own server),
``first_round_seconds``, ``seconds_per_round`` (the median of rounds 2..R,
also the value of the ``seconds_per_round`` row; jointly's jobs run ``--repeat`` times, plain and
secagg interleaved, and each keeps its fastest run, all runs' medians in ``steady_by_run``),
``bytes_per_round`` (everything through the aggregator in a steady round: jointly's aggregator's
bytes sent + received; Flower's protobuf-encoded messages in and out of the clients), and
``accuracy`` of the final global model on the test rows (``accuracy_by_round`` after each round).
``seconds`` is the whole job from submission.

Flower runs through ``benchmarks/_flower_peer.py`` in its own virtual environment
(``benchmarks/flower_setup.sh``); without it the Flower rows are skipped, and said so.  It runs in
two modes, each its own ``system``:

* ``flower``: its Simulation Runtime (``run_simulation`` on Ray; the ClientApps are long-lived actors
  of one CPU each and messages pass in memory), the fastest way Flower runs, and the peer the goals
  are checked against.  Every run, SecAgg+ included, has the full ``--rounds``.
* ``flower-deployment``: its local deployment (a SuperLink and one SuperNode per client on
  loopback), the way separate parties would run it.  A SuperNode starts a fresh ``flwr-clientapp``
  process for every message it receives (about 15 s per plain round of 5 clients here, 50 s per
  SecAgg+ round, whose four stages are four messages), so by default its SecAgg+ runs stop after
  ``--flower-short`` (3) rounds: their accuracy is compared with jointly's after as many rounds and
  their round time is the median of rounds 2..3.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, MemorySampler, Row, parse_args, wait_until_idle, write_results
from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.data.federated import dirichlet_partition, iid_partition
from jointly.runtime.client import JobClient
from jointly.runtime.horizontal import load_client_data, model_spec
from jointly.runtime.launcher import LocalFederation

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
FATE_DATA = SHARED_DATA / "fate"
FLWR_PYTHON = BENCH / ".flwr-venv" / "bin" / "python"
FLWR_PEER = BENCH / "_flower_peer.py"

SEED = 0
ALPHA = 0.5
TEST_FRACTION = 0.2
TRAINING = {"local_epochs": 1, "batch_size": 32, "lr": 0.05, "momentum": 0.9, "seed": SEED}
CNN = {"family": "cnn", "num_classes": 10, "in_channels": 1, "image_size": 8}
MLP = {"family": "mlp", "num_classes": 1, "in_features": 23, "hidden": [64]}
AGGREGATOR = "hub"


@dataclass(frozen=True)
class Dataset:
    name: str
    model: dict[str, Any]
    partition: str  # iid | dirichlet | natural
    fixed_clients: int | None = None  # a data set that comes split (default_credit_homo: 3 files)
    params: dict[str, Any] = field(default_factory=dict)


DATASETS = {
    "digits_iid": Dataset("digits_iid", CNN, "iid"),
    "digits_dirichlet": Dataset("digits_dirichlet", CNN, "dirichlet", params={"alpha": ALPHA}),
    "default_credit_homo": Dataset("default_credit_homo", MLP, "natural", fixed_clients=3),
}
CREDIT_FILES = ("default_credit_homo_guest.csv", "default_credit_homo_host_1.csv", "default_credit_homo_host_2.csv")


# -- data -----------------------------------------------------------------------------------
def write_digits(ds: Dataset, clients: list[str], data: Path) -> None:
    """Each client's share of digits as a MedMNIST-style ``.npz`` (float images in [0, 1], its test rows)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SEED
    )

    def split(y: np.ndarray) -> list[np.ndarray]:
        if ds.partition == "dirichlet":
            return dirichlet_partition(y, len(clients), ALPHA, rng=SEED)
        return iid_partition(y, len(clients), SEED)

    for name, tr, te in zip(clients, split(y_tr), split(y_te), strict=True):
        np.savez(
            data / f"{name}.npz",
            train_images=x_tr[tr],
            train_labels=y_tr[tr],
            val_images=x_te[:0],
            val_labels=y_te[:0],
            test_images=x_te[te],
            test_labels=y_te[te],
        )


def write_credit(clients: list[str], data: Path) -> bool:
    paths = [FATE_DATA / f for f in CREDIT_FILES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"  SKIPPED default_credit_homo: shared data not found: {', '.join(missing)}", file=sys.stderr)
        return False
    for name, path in zip(clients, paths, strict=True):
        pd.read_csv(path).to_csv(data / f"{name}.csv", index=False)
    return True


def job_spec(ds: Dataset, clients: list[str], rounds: int, secagg: bool) -> JobSpec:
    section: dict[str, Any] = {
        "aggregator": AGGREGATOR,
        "model": ds.model,
        "strategy": "fedavg",
        "rounds": rounds,
        **TRAINING,
        "test_fraction": TEST_FRACTION,
        "standardize": False,
    }
    if secagg:
        section["secure_aggregation"] = {"enabled": True}
    table = ds.partition == "natural"
    parties: dict[str, Any] = {
        AGGREGATOR: {},
        **{c: ({"data": f"{c}.csv", "label": "y"} if table else {"data": f"{c}.npz"}) for c in clients},
    }
    kind = "secagg" if secagg else "plain"
    return JobSpec.from_dict(
        {
            "name": f"bench-{ds.name}-{len(clients)}-{kind}",
            "kind": "horizontal",
            "parties": parties,
            "horizontal": section,
        }
    )


def flower_inputs(spec: JobSpec, clients: list[str], data: Path, out: Path) -> int:
    """The arrays each jointly client loads (through jointly's own loader), for Flower; returns test rows."""
    h = spec.horizontal
    assert h is not None
    mspec = model_spec(h)
    xs, ys = [], []
    for name in clients:
        ctx = SimpleNamespace(
            spec=spec, party=name, data_path=lambda name=name: data / spec.parties[name].data
        )  # the part of a PartyContext the loader reads
        local = load_client_data(ctx, mspec, h)  # type: ignore[arg-type]
        np.savez(
            out / f"{name}.npz", x_train=local.x_train, y_train=local.y_train, x_test=local.x_test, y_test=local.y_test
        )
        xs.append(local.x_test)
        ys.append(local.y_test)
    np.savez(out / "test.npz", x=np.concatenate(xs), y=np.concatenate(ys))
    return int(sum(len(y) for y in ys))


# -- systems --------------------------------------------------------------------------------
@dataclass
class Measured:
    system: str
    accuracy: float
    seconds: float
    startup: float
    rounds: list[dict[str, Any]]
    bytes_per_round: list[int]
    bytes_total: int
    peak_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def steady(self) -> float:
        times = [float(r["seconds"]) for r in self.rounds[1:]] or [float(self.rounds[0]["seconds"])]
        return statistics.median(times)


def run_jointly(
    specs: list[JobSpec], parties: list[str], data: Path, tmp: Path, repeat: int = 1
) -> tuple[list[Measured], dict[str, Any]]:
    """Start the parties' nodes, run a 1-round first job, then the jobs of ``specs`` in turn, ``repeat`` times.

    Cold start: the nodes are launched (nothing running), answer (``nodes_start_seconds``), warm up
    by loading torch and the learning runtime (``nodes_warm_seconds``, from launch), and then get
    their first job, 1 round of ``specs[0]``: its start-up is ``cold_startup_seconds`` and the end of
    its round, from launch, ``launch_to_first_round_done_seconds``.  The measured jobs follow on the
    same nodes.  With ``repeat > 1`` the specs run interleaved (plain, secagg, plain, secagg, ...) and
    each spec's run with the lowest steady round time is kept; every run's steady time is in
    ``steady_by_run``.  Each job starts once the nodes are idle (``settle_seconds``: how long that took).
    """
    fed = init_federation(parties, tmp / "fed", name="bench")
    cold: dict[str, Any] = {}
    measured: list[Measured] = []
    launched = time.perf_counter()
    with (
        LocalFederation(fed, tmp, data_dir=data, workers=1) as local,
        JobClient(local.federation, AGGREGATOR) as client,
    ):
        cold["nodes_start_seconds"] = round(time.perf_counter() - launched, 3)
        local.wait_warm()
        cold["nodes_warm_seconds"] = round(time.perf_counter() - launched, 3)
        pids = [p.pid for p in local.processes.values()]
        raw = specs[0].model_dump(mode="json", exclude_none=True)
        first_job = JobSpec.from_dict(
            {**raw, "name": "bench-first-job", "horizontal": {**raw["horizontal"], "rounds": 1}}
        )
        submitted = time.perf_counter() - launched
        first = _job(client, first_job, parties, pids)
        cold["cold_startup_seconds"] = round(first.startup, 3)
        cold["launch_to_first_round_done_seconds"] = round(
            submitted + first.startup + float(first.rounds[0]["seconds"]), 3
        )
        runs: list[list[Measured]] = [[] for _ in specs]
        settled: list[float] = []
        for _ in range(max(1, repeat)):
            for i, spec in enumerate(specs):
                settled.append(round(wait_until_idle(pids), 2))  # e.g. the last job's ledger replication
                runs[i].append(_job(client, spec, parties, pids))
        cold["settle_seconds"] = settled
        for tried in runs:
            best = min(tried, key=lambda m: m.steady)
            best.extra["steady_by_run"] = [round(m.steady, 4) for m in tried]
            measured.append(best)
    return measured, cold


def single_node_start(tmp: Path, times: int = 3) -> dict[str, float]:
    """One node launched alone (as on a party's own server): seconds until it answers and until it is warm.

    The median of ``times`` launches, each with a fresh work directory.
    """
    fed = init_federation(["solo", "other"], tmp / "fed", name="bench-solo")
    answer: list[float] = []
    warm: list[float] = []
    for i in range(times):
        launched = time.perf_counter()
        with LocalFederation(fed, tmp / f"run{i}", parties=["solo"], workers=1) as local:
            answer.append(time.perf_counter() - launched)
            local.wait_warm()
            warm.append(time.perf_counter() - launched)
    return {
        "single_node_start_seconds": round(statistics.median(answer), 3),
        "single_node_warm_seconds": round(statistics.median(warm), 3),
    }


def _job(client: JobClient, spec: JobSpec, parties: list[str], pids: list[int]) -> Measured:
    first_round: list[float] = []

    def on_update(views: dict[str, Any]) -> None:
        # the aggregator reports "federated training" just before its first round
        if not first_round and "federated training" in json.dumps(views.get(AGGREGATOR) or {}, default=str):
            first_round.append(time.perf_counter() - start)

    with MemorySampler(pids) as memory:
        start = time.perf_counter()
        job_id = client.submit(spec)
        outcome = client.watch(job_id, parties, poll=0.1, timeout=24 * 3600, on_update=on_update)
        seconds = time.perf_counter() - start
    if not outcome.succeeded:
        raise SystemExit(f"jointly horizontal job {spec.name} failed: {outcome.failure()}")
    views = outcome.views
    result = (views[AGGREGATOR] or {}).get("result") or {}
    rounds = [r for r in result.get("rounds") or [] if int(r.get("round", 0)) >= 1]  # round 0: the initial model
    if not rounds:
        raise SystemExit(f"jointly's aggregator reported no rounds for {spec.name}: {json.dumps(result)[:500]}")
    final = result.get("metrics") or {}
    accuracy = final.get("accuracy")
    if accuracy is None:
        accuracy = rounds[-1].get("accuracy", rounds[-1].get("metrics", {}).get("accuracy"))
    per_round = [int(r.get("bytes_sent", 0)) + int(r.get("bytes_received", 0)) for r in rounds]
    return Measured(
        system="jointly",
        accuracy=float(accuracy),
        seconds=seconds,
        startup=first_round[0] if first_round else float("nan"),
        rounds=rounds,
        bytes_per_round=per_round,
        bytes_total=sum(int((v or {}).get("bytes_sent", 0)) for v in views.values()),
        peak_mb=round(memory.peak_mb, 1),
        extra={
            "transport": "grpc-mtls-loopback",
            "auc": final.get("auc"),
            # the aggregator's own count: its job start to its first round (data loaded, plan sent)
            "aggregator_startup_seconds": result.get("startup_seconds"),
        },
    )


FLOWER_SYSTEMS = {"simulation": "flower", "deployment": "flower-deployment"}


def run_flower(
    spec: JobSpec, clients: list[str], flwr_data: Path, rounds: int, secagg: bool, mode: str
) -> Measured | None:
    if not FLWR_PYTHON.exists():
        print(
            f"  Flower is not installed ({FLWR_PYTHON} missing; run benchmarks/flower_setup.sh); skipping",
            file=sys.stderr,
        )
        return None
    h = spec.horizontal
    assert h is not None
    out = flwr_data / f"flower_{mode}_{'secagg' if secagg else 'plain'}.json"
    cmd = [
        str(FLWR_PYTHON),
        str(FLWR_PEER),
        "--data-dir", str(flwr_data),
        "--clients", ",".join(clients),
        "--model", json.dumps(h.model),
        "--rounds", str(rounds),
        "--local-epochs", str(h.local_epochs),
        "--batch-size", str(h.batch_size),
        "--lr", str(h.lr),
        "--momentum", str(h.momentum),
        "--seed", str(h.seed),
        "--threads", "1",
        "--out", str(out),
        "--mode", mode,
        *(["--secagg"] if secagg else []),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(BENCH)])}
    launched_at = time.time()  # wall clock, comparable with the peer's timestamps
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        print(
            f"  Flower ({mode}) failed on {spec.name} (exit {proc.returncode}): {proc.stderr[-3000:]}", file=sys.stderr
        )
        return None
    res = json.loads(out.read_text())
    per_round = [int(r["bytes"]) for r in res["rounds"]]
    return Measured(
        system=FLOWER_SYSTEMS[mode],
        accuracy=float(res["accuracy"]),
        seconds=float(res["wall_seconds"]),
        startup=float(res["startup_seconds"]),
        rounds=res["rounds"],
        bytes_per_round=per_round,
        bytes_total=int(res["bytes_total"]),
        peak_mb=float(res.get("peak_mb") or 0.0),
        extra={
            "flwr": res.get("flwr_version"),
            "deployment": res.get("deployment"),
            "auc": res.get("auc"),
            "cold_start_seconds": round(float(res["cold_start_seconds"]), 3),
            "launch_to_first_round_done_seconds": round(float(res["first_round_done_at"]) - launched_at, 3),
            "peer_process_seconds": round(seconds, 3),
        },
    )


def rows_of(m: Measured, ds: Dataset, clients: int, secagg: bool, test_rows: int) -> list[Row]:
    steady_bytes = int(statistics.median(m.bytes_per_round[1:] or m.bytes_per_round))
    params = {
        "secagg": secagg,
        "clients": clients,
        "partition": ds.partition,
        **ds.params,
        "rounds": len(m.rounds),
        "model": ds.model["family"],
        **TRAINING,
        "startup_seconds": round(m.startup, 3),
        "first_round_seconds": round(float(m.rounds[0]["seconds"]), 3),
        "seconds_per_round": round(m.steady, 4),
        "bytes_per_round": steady_bytes,
        "accuracy": m.accuracy,
        "accuracy_by_round": [round(float(r["accuracy"]), 6) if "accuracy" in r else None for r in m.rounds],
        "test_rows": test_rows,
        **{k: v for k, v in m.extra.items() if v is not None},
    }
    task = "fedavg+secagg" if secagg else "fedavg"
    dataset = f"{ds.name}_{clients}c"
    common = {"task": task, "dataset": dataset, "system": m.system, "seconds": round(m.seconds, 3)}
    return [
        Row(**common, metric="accuracy", value=m.accuracy, bytes_sent=m.bytes_total, peak_mb=m.peak_mb, params=params),
        Row(
            **common,
            metric="seconds_per_round",
            value=m.steady,
            bytes_sent=m.bytes_total,
            peak_mb=m.peak_mb,
            params=params,
        ),
    ]


def _show(m: Measured, secagg: bool) -> None:
    print(
        f"  {m.system:17s} {'secagg' if secagg else 'plain ':6s} acc {m.accuracy:.4f} @{len(m.rounds)}  "
        f"start {m.startup:6.2f} s  "
        f"round1 {float(m.rounds[0]['seconds']):6.2f} s  "
        f"steady {m.steady:7.3f} s/round  {statistics.median(m.bytes_per_round) / 1e6:7.3f} MB/round  "
        f"total {m.seconds:7.1f} s  peak {m.peak_mb:6.0f} MB",
        flush=True,
    )


def summary(rows: list[Row]) -> list[str]:
    """Side-by-side tables, one per Flower mode: the goals (accuracy within 1 point, round time,
    secagg overhead, start-up)."""
    acc = {(r.task, r.dataset, r.system): r for r in rows if r.metric == "accuracy"}
    lines: list[str] = []
    for peer in FLOWER_SYSTEMS.values():
        if not any(system == peer for _, _, system in acc):
            continue
        lines += [
            f"## jointly vs {peer}",
            "",
            "| config | secagg | acc jointly | acc Flower | Δ points | s/round jointly | s/round Flower | "
            "jointly ÷ Flower | start-up jointly | start-up Flower | first round done jointly | "
            "first round done Flower | from launch: first round done jointly | from launch: first round done "
            "Flower | KB/round jointly | KB/round Flower |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (task, dataset, system), r in acc.items():
            f = acc.get((task, dataset, peer))
            if system != "jointly" or f is None:
                continue
            p, q = r.params, f.params
            ours, label = p["accuracy"], f"{p['accuracy']:.4f}"
            if q["rounds"] < p["rounds"]:  # Flower ran fewer rounds: compare after as many
                ours = p["accuracy_by_round"][q["rounds"] - 1]
                label = f"{ours:.4f} @{q['rounds']} ({p['accuracy']:.4f} @{p['rounds']})"
            lines.append(
                f"| {dataset} | {p['secagg']} | {label} | {q['accuracy']:.4f} @{q['rounds']} | "
                f"{100 * (ours - q['accuracy']):+.2f} | {p['seconds_per_round']:.3f} | "
                f"{q['seconds_per_round']:.3f} | {p['seconds_per_round'] / q['seconds_per_round']:.3f} | "
                f"{p['startup_seconds']:.2f} | {q['startup_seconds']:.2f} | "
                f"{p['startup_seconds'] + p['first_round_seconds']:.2f} | "
                f"{q['startup_seconds'] + q['first_round_seconds']:.2f} | "
                f"{_seconds(p.get('launch_to_first_round_done_seconds'))} | "
                f"{_seconds(q.get('launch_to_first_round_done_seconds'))} | "
                f"{p['bytes_per_round'] / 1e3:.0f} | {q['bytes_per_round'] / 1e3:.0f} |"
            )
        lines.append("")
    if lines:
        lines += [
            "first round done: start-up plus the first round, from submission (Flower's simulation starts its Ray "
            "actors during its first round).  From launch: the same for the first job, counted from launching "
            "every process with nothing running (jointly: its nodes; Flower: the peer script, which starts Ray or "
            "the SuperLink and SuperNodes).",
            "",
        ]
    lines += ["Secure aggregation overhead (steady seconds per round, secagg ÷ plain):", ""]
    for system in ("jointly", *FLOWER_SYSTEMS.values()):
        for (task, dataset, sys_), r in acc.items():
            if sys_ != system or task != "fedavg+secagg":
                continue
            plain = acc.get(("fedavg", dataset, system))
            if plain is not None:
                ratio = r.params["seconds_per_round"] / plain.params["seconds_per_round"]
                lines.append(f"- {system} {dataset}: {ratio:.2f}x")
    return lines


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def notes_for(rounds: int, flower_short: int, modes: list[str], solo: dict[str, float]) -> list[str]:
    short = f"{min(rounds, flower_short)} rounds" if flower_short else f"{rounds} rounds"
    notes = [
        f"- {rounds} rounds, FedAvg, every client every round, 1 local epoch, batch 32, SGD lr 0.05 momentum 0.9, "
        "same initial model, data split and per-client seeds on both sides (Flower's clients run jointly's Trainer).",
        "- jointly: an aggregator node and one node per client, separate processes over mutual-TLS gRPC on "
        "loopback, one torch thread per client.  A node warms up after it starts: it loads torch and the "
        "learning runtime in the background and then reports itself warm (params.nodes_start_seconds: launch "
        "until every node answers; params.nodes_warm_seconds: until every node is warm, all of them loading at "
        "once on this machine's 2 cores).  The first job (1 round) goes to the nodes once they are warm: its "
        "start-up is params.cold_startup_seconds, and launch until its round is done "
        "params.launch_to_first_round_done_seconds.  "
        f"One node launched alone, as on a party's own server, answers in {solo['single_node_start_seconds']:.2f} s "
        f"and is warm in {solo['single_node_warm_seconds']:.2f} s (median of 3).  The measured jobs follow on the "
        "same nodes: plain and secagg jobs interleaved, --repeat times (default 3), each once the nodes are idle "
        "(params.settle_seconds: the last job's ledger replication), and each keeps the run with the lower median "
        "round time (params.steady_by_run has every run's: the spread between runs on this 2-core machine is up to "
        "30%).",
        "- Flower 1.41.0, both modes: its workflow API (DefaultWorkflow + FedAvg; SecAggPlusWorkflow + "
        "secaggplus_mod with every client sharing with every other, threshold a strict majority), central "
        "evaluation on the union of the clients' test rows.  Each Flower configuration runs once (its round "
        "times are far from jointly's either way), so jointly's best of --repeat runs favours jointly slightly in "
        "the jointly ÷ Flower column; the secagg ÷ plain ratios compare like with like.",
    ]
    if "simulation" in modes:
        notes.append(
            "- `flower`: Flower's Simulation Runtime (run_simulation on Ray 2.55.1): the ServerApp in one process, "
            "the ClientApps in long-lived Ray actors of one CPU each (two train at a time on this machine), "
            "messages passed in memory (no network, no TLS).  Its start-up is from run_simulation to the first "
            "configure_fit; starting Ray's actors falls in its first round (params.first_round_seconds).  "
            f"SecAgg+ runs have all {rounds} rounds."
        )
    if "deployment" in modes:
        notes += [
            "- `flower-deployment`: Flower's local deployment (flower-superlink + one flower-supernode per client, "
            "subprocess isolation, insecure HTTP, no Ray).  A SuperNode starts a fresh `flwr-clientapp` process "
            "for every message (4 per SecAgg+ round), which its round times include.",
            f"- flower-deployment's SecAgg+ runs stop after {short}; their accuracy is compared with jointly's "
            "after as many rounds (the @k in the table) and their round time is the median of rounds 2..k.",
        ]
    notes.append(
        "- bytes per round: jointly's aggregator's bytes sent + received (gRPC payloads); Flower's "
        "protobuf-encoded messages in and out of every client (no HTTP framing)."
    )
    return notes


def main() -> None:
    def extra(parser: Any) -> None:
        parser.add_argument("--clients", default=None, help="client counts for the digits sets (default 5,10)")
        parser.add_argument("--rounds", type=int, default=None, help="rounds (default 20; --quick 5)")
        parser.add_argument("--no-flower", action="store_true", help="skip Flower even where it is installed")
        parser.add_argument(
            "--flower-modes",
            default="simulation,deployment",
            help="how Flower runs: simulation (its Simulation Runtime on Ray, system 'flower') and/or deployment "
            "(SuperLink + SuperNodes, system 'flower-deployment')",
        )
        parser.add_argument("--no-secagg", action="store_true", help="skip the secure-aggregation runs")
        parser.add_argument(
            "--repeat",
            type=int,
            default=None,
            help="jointly's jobs run this many times, plain and secagg interleaved; each keeps its fastest "
            "steady round time (default 3; --quick 1)",
        )
        parser.add_argument(
            "--flower-short",
            type=int,
            default=3,
            help="rounds Flower's deployment runs with secure aggregation (~50 s per SecAgg+ round of 5 clients); "
            "its accuracy is then compared with jointly's after as many rounds (0: the full --rounds)",
        )

    args, chosen = parse_args("horizontal", list(DATASETS), quick=["digits_iid"], extra=extra)
    counts = [int(c) for c in (args.clients or ("5" if args.quick else "5,10")).split(",") if c]
    rounds = args.rounds or (5 if args.quick else 20)
    repeat = args.repeat or (1 if args.quick else 3)
    rows: list[Row] = []
    flower_modes = [m for m in args.flower_modes.split(",") if m]
    unknown = sorted(set(flower_modes) - set(FLOWER_SYSTEMS))
    if unknown:
        raise SystemExit(f"--flower-modes: unknown {', '.join(unknown)} (known: {', '.join(FLOWER_SYSTEMS)})")
    with tempfile.TemporaryDirectory(prefix="jointly-bench-horizontal-solo-") as solo_dir:
        solo = single_node_start(Path(solo_dir))
    print(
        f"one node alone: answers in {solo['single_node_start_seconds']:.2f} s, "
        f"warm in {solo['single_node_warm_seconds']:.2f} s",
        flush=True,
    )
    notes = notes_for(rounds, args.flower_short, flower_modes, solo)
    for key in chosen:
        ds = DATASETS[key]
        for n in [ds.fixed_clients] if ds.fixed_clients else counts:
            clients = [f"c{i + 1}" for i in range(n)]
            with tempfile.TemporaryDirectory(prefix="jointly-bench-horizontal-") as tmp_name:
                tmp = Path(tmp_name)
                data = tmp / "data"
                data.mkdir()
                if ds.partition == "natural":
                    if not write_credit(clients, data):
                        notes.append(f"- {key}: skipped, ../shared/data/fate is absent")
                        break
                else:
                    write_digits(ds, clients, data)
                flwr_data = tmp / "flower"
                flwr_data.mkdir()
                test_rows = flower_inputs(job_spec(ds, clients, rounds, False), clients, data, flwr_data)
                modes = [False] if args.no_secagg else [False, True]
                specs = [job_spec(ds, clients, rounds, secagg) for secagg in modes]
                print(f"horizontal {key}: {n} clients, {rounds} rounds, jointly (plain, secagg)", flush=True)
                ours, cold = run_jointly(specs, [AGGREGATOR, *clients], data, tmp / "jointly", repeat=repeat)
                for secagg, m in zip(modes, ours, strict=True):
                    m.extra.update(cold | solo)
                    _show(m, secagg)
                    rows += rows_of(m, ds, n, secagg, test_rows)
                write_results("horizontal", rows, notes=[*notes, "", *summary(rows)])
                if args.no_flower:
                    continue
                for mode in flower_modes:
                    for secagg, spec in zip(modes, specs, strict=True):
                        short = args.flower_short and secagg and mode == "deployment"
                        k = min(rounds, args.flower_short) if short else rounds
                        print(f"horizontal {key}: {n} clients, Flower {mode}, {k} rounds, secagg={secagg}", flush=True)
                        peer = run_flower(spec, clients, flwr_data, k, secagg, mode)
                        if peer is not None:
                            _show(peer, secagg)
                            rows += rows_of(peer, ds, n, secagg, test_rows)
                        write_results("horizontal", rows, notes=[*notes, "", *summary(rows)])
    out = write_results("horizontal", rows, notes=[*notes, "", *summary(rows)])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
