"""Vertical SecureBoost benchmark: jointly (guest and host node processes over loopback mutual-TLS gRPC)
against plaintext XGBoost with the same trees, depth and bins, and FATE's hetero SecureBoost where installed.

    python benchmarks/vertical.py [--quick] [--datasets breast,default_credit,...] [--key-bits 2048]

Data: FATE's own example sets in ``../shared/data/fate/`` (guest file with ``y`` and
some features, host file with the other features of the same ids), and a generated
1M-row, 40-feature set.  Every system gets the same seeded 80/20 train/test split
of the ids and the same parameters.  Our ``seconds`` is the training job's wall
time from submission to every party finishing: PSI alignment of the ids, Paillier
key generation, every tree, every message over gRPC (both parties share this
machine's two cores).  The test rows are then scored by a federated prediction job
(its time is in ``params.predict_seconds``) and the metric is computed from the
guest's predictions.  XGBoost trains on the concatenated features in one process
(``tree_method=hist``, the same ``max_bin``).  FATE runs through
``benchmarks/_fate_peer.py`` in its own virtual environment
(``benchmarks/fate_setup.sh`` makes it); without it the FATE rows are skipped, and said so.
Metric names: ``auc`` (binary; macro one-vs-rest for multi-class), ``rmse`` (regression).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, MemorySampler, Row, parse_args, peak_mb_of, self_peak_mb, write_results
from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.learn.metrics import evaluate
from jointly.runtime.client import JobClient
from jointly.runtime.launcher import LocalFederation

FATE_DATA = SHARED_DATA / "fate"
FATE_PYTHON = Path(__file__).resolve().parent / ".fate-venv" / "bin" / "python"
FATE_PEER = Path(__file__).resolve().parent / "_fate_peer.py"


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # binary | multiclass | regression
    n_trees: int
    max_depth: int
    n_classes: int = 2
    files: tuple[str, str] | None = None  # guest, host file names in ../shared/data/fate
    synthetic_rows: int = 0
    params: dict[str, Any] = field(default_factory=dict)


DATASETS = {
    "breast": Dataset("breast", "binary", 5, 3, files=("breast_hetero_guest.csv", "breast_hetero_host.csv")),
    "default_credit": Dataset(
        "default_credit", "binary", 10, 4, files=("default_credit_hetero_guest.csv", "default_credit_hetero_host.csv")
    ),
    "vehicle_scale": Dataset(
        "vehicle_scale",
        "multiclass",
        5,
        3,
        n_classes=4,
        files=("vehicle_scale_hetero_guest.csv", "vehicle_scale_hetero_host.csv"),
    ),
    "student": Dataset("student", "regression", 5, 3, files=("student_hetero_guest.csv", "student_hetero_host.csv")),
}
#: the scale test lives in benchmarks/vertical_1m.py (same code, its own results file)
SCALE = {"synthetic_1m": Dataset("synthetic_1m", "binary", 3, 3, synthetic_rows=1_000_000)}
#: FATE is measured on these by default; on default_credit it needs far longer than our whole benchmark
FATE_DEFAULT = ("breast", "student", "vehicle_scale")
BINS = 32
LEARNING_RATE = 0.3
L2 = 1.0
MIN_CHILD_WEIGHT = 1.0
TEST_FRACTION = 0.2
SEED = 42


# -- data -----------------------------------------------------------------------------------
def load(ds: Dataset) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Guest (id, y, features) and host (id, features) frames, or None if the shared data is absent."""
    if ds.synthetic_rows:
        return synthetic(ds.synthetic_rows, features=40, seed=SEED)
    assert ds.files is not None
    paths = [FATE_DATA / f for f in ds.files]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"  SKIPPED {ds.name}: shared data not found: {', '.join(missing)}", file=sys.stderr)
        return None
    return pd.read_csv(paths[0]), pd.read_csv(paths[1])


def synthetic(rows: int, *, features: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A generated credit-like set: half the features with the guest, half with the host, both informative."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features) * (rng.random(features) < 0.5)
    logit = X @ w / np.sqrt(max(1, int((w != 0).sum()))) * 2.0 + 0.5 * np.sin(3 * X[:, 0]) * X[:, features // 2]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    ids = np.arange(rows)
    half = features // 2
    guest = pd.DataFrame(X[:, :half], columns=[f"x{i}" for i in range(half)])
    guest.insert(0, "y", y)
    guest.insert(0, "id", ids)
    host = pd.DataFrame(X[:, half:], columns=[f"x{i}" for i in range(features - half)])
    host.insert(0, "id", ids)
    return guest, host


def split(guest: pd.DataFrame, host: pd.DataFrame) -> dict[str, pd.DataFrame]:
    ids = np.sort(guest["id"].to_numpy())
    order = np.random.default_rng(SEED).permutation(len(ids))
    test_ids = set(ids[order[: round(len(ids) * TEST_FRACTION)]].tolist())
    g_test, h_test = guest["id"].isin(test_ids), host["id"].isin(test_ids)
    return {
        "guest_train": guest[~g_test],
        "host_train": host[~h_test],
        "guest_test": guest[g_test].sort_values("id"),
        "host_test": host[h_test].sort_values("id"),
    }


def metric_of(ds: Dataset, y: np.ndarray, scores: np.ndarray) -> tuple[str, float, dict[str, float]]:
    """The headline metric, and the rest of the task's metrics (accuracy, for the comparison with FATE)."""
    if ds.task == "regression":
        return "rmse", float(np.sqrt(np.mean((y - scores) ** 2))), {}
    result = evaluate(ds.task, y, scores)
    return "auc", float(result["auc"]), {"accuracy": float(result["accuracy"])}


# -- systems --------------------------------------------------------------------------------
def run_jointly(ds: Dataset, parts: dict[str, pd.DataFrame], tmp: Path, key_bits: int) -> Row:
    data = tmp / "data"
    data.mkdir(parents=True)
    for name, frame in parts.items():
        frame.to_csv(data / f"{name}.csv", index=False)
    fed = init_federation(["guest", "host"], tmp / "fed", name="bench")
    model = {
        "task": ds.task,
        "n_trees": ds.n_trees,
        "max_depth": ds.max_depth,
        "max_bins": BINS,
        "learning_rate": LEARNING_RATE,
        "l2": L2,
        "min_child_weight": MIN_CHILD_WEIGHT,
        "key_bits": key_bits,
        **({"n_classes": ds.n_classes} if ds.task == "multiclass" else {}),
        **({"allow_unsafe_key_size": True} if key_bits < 2048 else {}),
    }
    train = JobSpec.from_dict(
        {
            "name": f"bench-{ds.name}",
            "kind": "secureboost",
            "parties": {"guest": {"data": "guest_train.csv", "label": "y"}, "host": {"data": "host_train.csv"}},
            "vertical": {"test_fraction": 0.0, "baseline": False},
            "secureboost": model,
        }
    )
    with (
        LocalFederation(fed, tmp, data_dir=data) as local,
        JobClient(local.federation, "guest") as client,
        MemorySampler(p.pid for p in local.processes.values()) as memory,
    ):
        start = time.perf_counter()
        job_id = client.submit(train)
        outcome = client.watch(job_id, ["guest", "host"], poll=0.1, timeout=24 * 3600)
        seconds = time.perf_counter() - start
        if not outcome.succeeded:
            raise SystemExit(f"jointly SecureBoost failed on {ds.name}: {outcome.failure()}")
        sent = sum(int((v or {}).get("bytes_sent", 0)) for v in outcome.views.values())
        score = JobSpec.from_dict(
            {
                "name": f"bench-{ds.name}-score",
                "kind": "predict",
                "parties": {"guest": {"data": "guest_test.csv"}, "host": {"data": "host_test.csv"}},
                "predict": {"model": job_id},
            }
        )
        start = time.perf_counter()
        score_id = client.submit(score)
        scored = client.watch(score_id, ["guest", "host"], poll=0.1, timeout=24 * 3600)
        predict_seconds = time.perf_counter() - start
        peak_sum = peak_mb_of(p.pid for p in local.processes.values())
        if not scored.succeeded:
            raise SystemExit(f"jointly prediction failed on {ds.name}: {scored.failure()}")
        predictions = pd.read_csv(local.workdir("guest") / "jobs" / score_id / "output" / "predictions.csv")
    truth = parts["guest_test"].set_index(parts["guest_test"]["id"].astype(str))["y"]
    y = truth.loc[predictions["id"].astype(str)].to_numpy(dtype=float)
    scores = predictions["score"].to_numpy() if "score" in predictions else predictions.filter(like="p").to_numpy()
    metric, value, more = metric_of(ds, y, scores)
    history = (outcome.views["guest"] or {}).get("result", {}).get("history")
    return Row(
        task="secureboost",
        dataset=ds.name,
        system="jointly",
        metric=metric,
        value=value,
        seconds=seconds,
        bytes_sent=sent,
        peak_mb=round(memory.peak_mb, 1),
        params={
            **model,
            # each process's own peak, summed (overstates: peaks at different times, shared pages counted again)
            "peak_mb_sum_of_process_peaks": round(peak_sum, 1),
            "predict_seconds": round(predict_seconds, 3),
            "train_rows": len(parts["guest_train"]),
            "test_rows": len(parts["guest_test"]),
            "transport": "grpc-mtls-loopback",
            "trees_built": len(history) if isinstance(history, list) else None,
            # training alone (the trees), comparable with FATE's seconds_fit; `seconds` is the whole job
            "fit_seconds": round(sum(float(h.get("seconds", 0.0)) for h in history), 3)
            if isinstance(history, list)
            else None,
            **more,
        },
    )


def run_xgboost(ds: Dataset, parts: dict[str, pd.DataFrame]) -> Row | None:
    try:
        import xgboost as xgb
    except ImportError:
        print("  xgboost is not installed (make bench installs it); skipping that peer", file=sys.stderr)
        return None

    def joined(g: pd.DataFrame, h: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        both = g.merge(h, on="id", suffixes=("_g", "_h")).sort_values("id")
        return both.drop(columns=["id", "y"]).to_numpy(dtype=np.float64), both["y"].to_numpy(dtype=float)

    X_train, y_train = joined(parts["guest_train"], parts["host_train"])
    X_test, y_test = joined(parts["guest_test"], parts["host_test"])
    common = {
        "n_estimators": ds.n_trees,
        "max_depth": ds.max_depth,
        "learning_rate": LEARNING_RATE,
        "reg_lambda": L2,
        "min_child_weight": MIN_CHILD_WEIGHT,
        "max_bin": BINS,
        "tree_method": "hist",
        "n_jobs": 2,
    }
    start = time.perf_counter()
    if ds.task == "regression":
        model = xgb.XGBRegressor(**common).fit(X_train, y_train)
        scores = model.predict(X_test)
    else:
        model = xgb.XGBClassifier(**common).fit(X_train, y_train.astype(int))
        proba = model.predict_proba(X_test)
        scores = proba[:, 1] if ds.task == "binary" else proba
    seconds = time.perf_counter() - start
    metric, value, more = metric_of(ds, y_test, scores)
    return Row(
        task="secureboost",
        dataset=ds.name,
        system="xgboost-plaintext",
        metric=metric,
        value=value,
        seconds=seconds,
        bytes_sent=0,
        peak_mb=self_peak_mb(),
        params={**common, **more, "xgboost": xgb.__version__, "note": "one process, all features, no encryption"},
    )


def run_fate(ds: Dataset, parts: dict[str, pd.DataFrame], tmp: Path, key_bits: int) -> Row | None:
    if not FATE_PYTHON.exists() or not FATE_PEER.exists():
        print(
            f"  FATE is not installed ({FATE_PYTHON} missing; run benchmarks/fate_setup.sh); skipping", file=sys.stderr
        )
        return None
    files = {}
    for name, frame in parts.items():
        files[name] = tmp / f"fate_{name}.csv"
        frame.to_csv(files[name], index=False)
    out = tmp / "fate_result.json"
    cmd = [
        str(FATE_PYTHON),
        str(FATE_PEER),
        "--guest", str(files["guest_train"]),
        "--host", str(files["host_train"]),
        "--test-guest", str(files["guest_test"]),
        "--test-host", str(files["host_test"]),
        "--task", ds.task,
        "--n-trees", str(ds.n_trees),
        "--max-depth", str(ds.max_depth),
        "--bins", str(BINS),
        "--learning-rate", str(LEARNING_RATE),
        "--l2", str(L2),
        "--key-bits", str(key_bits),
        "--out", str(out),
        "--count-bytes",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        print(f"  FATE failed on {ds.name} (exit {proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    res = json.loads(out.read_text())
    # FATE reports no AUC for multi-class: its row carries accuracy, compared with ours in params.accuracy
    metric = {"regression": "rmse", "binary": "auc", "multiclass": "accuracy"}[ds.task]
    return Row(
        task="secureboost",
        dataset=ds.name,
        system="fate",
        metric=metric,
        value=float(res[metric]),
        seconds=float(res["seconds_fit"]),
        bytes_sent=int(res.get("bytes_sent") or 0),
        peak_mb=float(res.get("peak_mb") or 0.0),
        params={
            "key_bits": key_bits,
            "seconds_total": res.get("seconds_total"),
            "fate": res.get("fate_version"),
            "accuracy": res.get("accuracy"),
            "note": "bytes_sent counted by benchmarks/_fate_peer.py (FATE has no counter); peak_mb sums 8 processes",
        },
    )


def main(name: str = "vertical", datasets: dict[str, Dataset] = DATASETS, quick: tuple[str, ...] = ("breast",)) -> None:
    # vertical jobs need no torch: the nodes skip their background preload of the federated-learning runtime,
    # which would otherwise compete for the two cores with the first job right after the nodes start
    os.environ.setdefault("JOINTLY_PRELOAD", "none")

    def extra(parser: Any) -> None:
        parser.add_argument("--key-bits", type=int, default=2048, help="Paillier key size for jointly and FATE")
        parser.add_argument("--no-fate", action="store_true", help="skip FATE even where it is installed")
        parser.add_argument(
            "--fate-datasets",
            default=",".join(FATE_DEFAULT),
            help="datasets FATE runs on (its 30k-row runs take far longer than the rest of the benchmark)",
        )

    args, chosen = parse_args(name, list(datasets), quick=list(quick), extra=extra)
    rows: list[Row] = []
    notes: list[str] = []
    for key in chosen:
        ds = datasets[key]
        frames = load(ds)
        if frames is None:
            notes.append(f"- {key}: skipped, ../shared/data/fate is absent")
            continue
        parts = split(*frames)
        print(f"vertical {key}: {len(frames[0]):,} rows, {ds.task}, {ds.n_trees} trees of depth {ds.max_depth}")
        with tempfile.TemporaryDirectory(prefix="jointly-bench-vertical-") as tmp:
            ours = run_jointly(ds, parts, Path(tmp), args.key_bits)
            rows.append(ours)
            _show(ours)
            peer = run_xgboost(ds, parts)
            if peer is not None:
                rows.append(peer)
                _show(peer)
                notes.append(f"- {key}: jointly {ours.metric} - xgboost {peer.metric} = {ours.value - peer.value:+.4f}")
            if not args.no_fate and key in args.fate_datasets.split(","):
                fate = run_fate(ds, parts, Path(tmp), args.key_bits)
                if fate is not None:
                    rows.append(fate)
                    _show(fate)
                    fit = ours.params.get("fit_seconds") or ours.seconds
                    notes.append(
                        f"- {key}: FATE's fit takes {fate.seconds / ours.seconds:.1f}x our whole job "
                        f"(PSI, keys, training, gRPC) and {fate.seconds / fit:.1f}x our training"
                    )
    out = write_results(name, rows, notes=notes)
    print(f"wrote {out}")


def _show(row: Row) -> None:
    print(
        f"  {row.system:18s} {row.metric} {row.value:.4f}  {row.seconds:8.2f} s  "
        f"{row.bytes_sent / 1e6:9.1f} MB sent  peak {row.peak_mb:7.0f} MB",
        flush=True,
    )


if __name__ == "__main__":
    main()
