"""Peer runner: FATE 2.x hetero SecureBoost (guest + host(s)) in FATE's local launcher mode.

Run it with the interpreter of the FATE venv made by ``benchmarks/fate_setup.sh``, never with
jointly's own .venv::

    benchmarks/.fate-venv/bin/python benchmarks/_fate_peer.py \
        --guest G.csv --host H.csv [--host H2.csv ...] \
        --task binary|multiclass|regression \
        --n-trees 5 --max-depth 3 --bins 32 --learning-rate 0.3 --l2 0.1 --key-bits 1024 \
        --test-guest TG.csv --test-host TH.csv [--test-host TH2.csv ...] \
        --out result.json

How it runs FATE: ``fate.arch.launchers.multiprocess_launcher.MultiProcessLauncher`` (what
``fate.arch.launchers.multiprocess_launcher.launch`` and FATE's own ``launchers/*.py`` use) spawns
one local process per party; each builds its context with
``fate.arch.launchers.context_helper.init_context`` (context_type "local": standalone computing
backend on LMDB + standalone federation).  No FATE-Flow, no eggroll, no services.  The guest then
runs ``fate.ml.ensemble.HeteroSecureBoostGuest`` and each host ``HeteroSecureBoostHost``, the same
classes FATE's ``hetero_secureboost`` component calls, with the same Paillier setup
(``ctx.cipher.set_phe(ctx.device, {"kind": "paillier", "key_length": K})``).

Data: CSVs with columns ``id``, ``y`` (guest only), ``x0..xN``.  Guest and host rows are matched on
``id`` (the caller hands over already-aligned splits, as FATE would get after its PSI step; no PSI is
run or timed here).  Rows present in the guest file but not in every host file are an error.

Output JSON (see ``_result`` below): seconds_fit, seconds_total, metric(s), n_trees, bytes_sent,
peak_mb, fate_version, plus details.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import tempfile
import threading
import time
import uuid

_CFG_ENV = "JOINTLY_FATE_PEER_CFG"
_GUEST_PARTY_ID = 9999
_FIRST_HOST_PARTY_ID = 10000


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--guest", required=True, help="guest train CSV (id, y, x0..)")
    p.add_argument("--host", required=True, action="append", help="host train CSV (id, x0..); repeat per host")
    p.add_argument("--task", required=True, choices=["binary", "multiclass", "regression"])
    p.add_argument("--n-trees", type=int, required=True)
    p.add_argument("--max-depth", type=int, required=True)
    p.add_argument("--bins", type=int, required=True, help="max_bin of FATE's binning")
    p.add_argument("--learning-rate", type=float, required=True)
    p.add_argument("--l2", type=float, required=True)
    p.add_argument("--key-bits", type=int, required=True, help="Paillier key length (FATE minimum: 1024)")
    p.add_argument("--test-guest", required=True)
    p.add_argument("--test-host", required=True, action="append", help="one per --host, same order")
    p.add_argument("--out", required=True, help="result JSON path")
    p.add_argument("--num-class", type=int, default=None, help="multiclass: default max(y)+1 of guest train")
    p.add_argument(
        "--count-bytes",
        action="store_true",
        help="instrument FATE's standalone federation to add up the serialized payload each party "
        "pushes (FATE itself exposes no byte counter); adds a little time; default: bytes_sent=null",
    )
    p.add_argument("--work-dir", default=None, help="scratch dir for FATE's LMDB data (default: a temp dir, removed)")
    p.add_argument("--log-level", default="WARNING", help="FATE log level (launcher + parties)")
    p.add_argument("--predictions-out", default=None, help="optional CSV: id, y, FATE's predict_score/result")
    a = p.parse_args(argv)
    if len(a.test_host) != len(a.host):
        p.error(f"{len(a.host)} --host file(s) but {len(a.test_host)} --test-host file(s)")
    for name in ("n_trees", "max_depth", "bins", "key_bits"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be > 0")
    for path in [a.guest, *a.host, a.test_guest, *a.test_host]:
        if not os.path.isfile(path):
            p.error(f"no such file: {path}")
    return a


# --------------------------------------------------------------------------------------------------
# Party side (runs in the processes FATE's launcher spawns; module level so "spawn" can import it)
# --------------------------------------------------------------------------------------------------


def _install_byte_counter(counter: dict) -> None:
    """Wrap StandaloneFederation's push methods to add up what would go on the wire.

    Objects: the bytes FATE's serdes produced.  Tables: sum of the serialized key+value bytes of the
    table (in standalone mode a pushed table is handed over as an LMDB copy, so this is the payload a
    networked backend would have to ship, without framing).  Counted once per receiving party.
    """
    from fate.arch.federation.backends.standalone._federation import StandaloneFederation

    orig_push_bytes = StandaloneFederation._push_bytes
    orig_push_table = StandaloneFederation._push_table

    def _push_bytes(self, v, name, tag, parties):
        counter["bytes"] += len(v) * len(parties)
        counter["objects"] += len(parties)
        return orig_push_bytes(self, v, name, tag, parties)

    def _push_table(self, table, name, tag, parties):
        size = 0
        for k, v in table.table.collect():
            size += len(k) + len(v)
        counter["bytes"] += size * len(parties)
        counter["tables"] += len(parties)
        return orig_push_table(self, table, name, tag, parties)

    StandaloneFederation._push_bytes = _push_bytes
    StandaloneFederation._push_table = _push_table


def _read_frame(ctx, path: str, label_type: str | None):
    import pandas as pd
    from fate.arch.dataframe import PandasReader

    df = pd.read_csv(path)
    if "id" not in df.columns:
        raise ValueError(f"{path}: no 'id' column")
    if df["id"].duplicated().any():
        raise ValueError(f"{path}: duplicate ids")
    # sample_id = the shared match id, so guest and host index the same rows identically.
    df.insert(0, "sample_id", df["id"].astype(str))
    feats = [c for c in df.columns if c not in ("sample_id", "id", "y")]
    kw = dict(sample_id_name="sample_id", match_id_name="id", dtype="float32")
    if label_type is not None:
        if "y" not in df.columns:
            raise ValueError(f"{path}: guest file has no 'y' column")
        kw.update(label_name="y", label_type=label_type)
        df = df[["sample_id", "id", "y", *feats]]
    else:
        df = df[["sample_id", "id", *feats]]
    ids = df["id"].tolist()
    return PandasReader(**kw).to_frame(ctx, df), ids, (df["y"].to_numpy() if label_type else None)


def _run_party(ctx) -> None:
    cfg = json.loads(os.environ[_CFG_ENV])
    role_name, party_id = ctx.local.role, ctx.local.party_id
    counter = {"bytes": 0, "objects": 0, "tables": 0}
    if cfg["count_bytes"]:
        _install_byte_counter(counter)
    out: dict = {"role": role_name, "party_id": party_id, "pid": os.getpid()}
    t_start = time.perf_counter()

    if ctx.is_on_guest:
        from fate.ml.ensemble import HeteroSecureBoostGuest

        objective = {"binary": "binary:bce", "multiclass": "multi:ce", "regression": "regression:l2"}[cfg["task"]]
        label_type = "float32" if cfg["task"] == "regression" else "int32"
        train, _, y_train = _read_frame(ctx, cfg["guest"], label_type)
        test, test_ids, _ = _read_frame(ctx, cfg["test_guest"], label_type)
        out["seconds_load"] = time.perf_counter() - t_start
        num_class = 1
        if cfg["task"] == "binary":
            num_class = 2
        elif cfg["task"] == "multiclass":
            num_class = cfg["num_class"] or int(max(y_train)) + 1
        ctx.cipher.set_phe(ctx.device, {"kind": "paillier", "key_length": cfg["key_bits"]})
        booster = HeteroSecureBoostGuest(
            num_trees=cfg["n_trees"],
            max_depth=cfg["max_depth"],
            learning_rate=cfg["learning_rate"],
            objective=objective,
            num_class=num_class,
            max_bin=cfg["bins"],
            l2=cfg["l2"],
        )
        t0 = time.perf_counter()
        booster.fit(ctx.sub_ctx("fit"), train)
        out["seconds_fit"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        pred = booster.predict(ctx.sub_ctx("predict"), test).as_pd_df()
        out["seconds_predict"] = time.perf_counter() - t1
        out["n_trees_built"] = len(booster._trees)
        out["tree_dim"] = booster._tree_dim
        out["num_class"] = num_class
        out["loss_history"] = [float(v) for v in booster._loss_history]
        # back to plain python for the parent
        pred["match_id_str"] = pred["sample_id"].astype(str)
        keep = ["match_id_str", "label", "predict_score", "predict_result", "predict_detail"]
        out["predictions"] = pred[[c for c in keep if c in pred.columns]].astype(str).to_dict(orient="list")
        out["n_test"] = len(test_ids)
    else:
        from fate.ml.ensemble import HeteroSecureBoostHost

        idx = cfg["host_party_ids"].index(int(party_id))
        train, _, _ = _read_frame(ctx, cfg["host"][idx], None)
        test, _, _ = _read_frame(ctx, cfg["test_host"][idx], None)
        out["seconds_load"] = time.perf_counter() - t_start
        booster = HeteroSecureBoostHost(num_trees=cfg["n_trees"], max_depth=cfg["max_depth"], max_bin=cfg["bins"])
        t0 = time.perf_counter()
        booster.fit(ctx.sub_ctx("fit"), train)
        out["seconds_fit"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        booster.predict(ctx.sub_ctx("predict"), test)
        out["seconds_predict"] = time.perf_counter() - t1

    out["seconds_party"] = time.perf_counter() - t_start
    out["bytes_pushed"] = counter["bytes"] if cfg["count_bytes"] else None
    out["pushes"] = {"objects": counter["objects"], "tables": counter["tables"]} if cfg["count_bytes"] else None
    path = os.path.join(cfg["result_dir"], f"{role_name}_{party_id}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f)
    os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------------


class _TreeRssSampler(threading.Thread):
    """Samples the summed RSS of all descendants of this process (psutil) every `interval` s."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_sum = 0
        self.peak_single = 0
        self.max_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.is_set():
            total, n = 0, 0
            try:
                kids = me.children(recursive=True)
            except psutil.Error:
                kids = []
            for k in kids:
                try:
                    rss = k.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                n += 1
                self.peak_single = max(self.peak_single, rss)
            self.peak_sum = max(self.peak_sum, total)
            self.max_procs = max(self.max_procs, n)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _metrics(task: str, pred: dict, y_true_by_id: dict) -> dict:
    import numpy as np
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    ids = pred["match_id_str"]
    y = np.array([y_true_by_id[i] for i in ids])
    if task == "binary":
        score = np.array([float(s) for s in pred["predict_score"]])
        return {
            "auc": float(roc_auc_score(y.astype(int), score)),
            "accuracy": float(accuracy_score(y.astype(int), (score > 0.5).astype(int))),
        }
    if task == "multiclass":
        yhat = np.array([int(float(r)) for r in pred["predict_result"]])
        return {"accuracy": float(accuracy_score(y.astype(int), yhat))}
    yhat = np.array([float(s) for s in pred["predict_score"]])
    return {"rmse": float(np.sqrt(mean_squared_error(y.astype(float), yhat)))}


def main(argv: list[str]) -> int:
    t_begin = time.perf_counter()
    a = _parse_args(argv)

    import shutil

    import fate
    import pandas as pd

    host_ids = [_FIRST_HOST_PARTY_ID + i for i in range(len(a.host))]
    parties = [f"guest:{_GUEST_PARTY_ID}"] + [f"host:{h}" for h in host_ids]

    # Check alignment up front (clear error instead of a hang/obscure failure in FATE).
    def _ids(path):
        return set(pd.read_csv(path, usecols=["id"])["id"].astype(str))

    for g, hs in ((a.guest, a.host), (a.test_guest, a.test_host)):
        gi = _ids(g)
        for h in hs:
            if _ids(h) != gi:
                print(f"error: ids of {h} differ from those of {g} (the caller must align the split)", file=sys.stderr)
                return 2
    test_guest_df = pd.read_csv(a.test_guest)
    y_true_by_id = dict(zip(test_guest_df["id"].astype(str), test_guest_df["y"], strict=True))

    own_work = a.work_dir is None
    work = a.work_dir or tempfile.mkdtemp(prefix="fate-peer-")
    if own_work:  # removed on any exit of this process (success or failure)
        atexit.register(shutil.rmtree, work, True)
    data_dir = os.path.join(work, "data")
    result_dir = os.path.join(work, "results")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(result_dir, exist_ok=True)
    cfg = {
        "task": a.task,
        "n_trees": a.n_trees,
        "max_depth": a.max_depth,
        "bins": a.bins,
        "learning_rate": a.learning_rate,
        "l2": a.l2,
        "key_bits": a.key_bits,
        "num_class": a.num_class,
        "guest": os.path.abspath(a.guest),
        "host": [os.path.abspath(h) for h in a.host],
        "test_guest": os.path.abspath(a.test_guest),
        "test_host": [os.path.abspath(h) for h in a.test_host],
        "host_party_ids": host_ids,
        "result_dir": result_dir,
        "count_bytes": a.count_bytes,
    }
    os.environ[_CFG_ENV] = json.dumps(cfg)
    # FATE 2.2 + pandas 2.2 print a FutureWarning per row-apply; keep the parties' stderr readable.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")

    # FATE's launcher (parent and each spawned party) re-parses sys.argv with its own dataclass
    # parsers: hand it exactly the launcher arguments.
    session_id = f"jointly-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    sys.argv = [
        sys.argv[0],
        "--parties",
        *parties,
        "--log_level",
        a.log_level,
        "--data_dir",
        data_dir,
        "--federation_session_id",
        session_id,
    ]

    import rich.console
    from fate.arch.launchers.logger import set_up_logging
    from fate.arch.launchers.multiprocess_launcher import MultiProcessLauncher

    set_up_logging(-1, a.log_level)
    sampler = _TreeRssSampler()
    sampler.start()
    launcher = MultiProcessLauncher(rich.console.Console(stderr=True), parties, session_id, data_dir, a.log_level)
    t_launch = time.perf_counter()
    launcher.start(_run_party)
    rc = launcher.wait()
    t_done = time.perf_counter()
    # FATE's launcher: release the parties, a fixed 10 s grace sleep, then terminate/join.
    launcher.terminate()
    t_end = time.perf_counter()
    sampler.stop()
    if rc != 0:
        launcher.show_exceptions()
        print("error: a FATE party failed (traceback above)", file=sys.stderr)
        return 1

    import resource

    parts = {}
    for name in os.listdir(result_dir):
        if name.endswith(".json"):
            with open(os.path.join(result_dir, name)) as f:
                r = json.load(f)
            parts[f"{r['role']}:{r['party_id']}"] = r
    guest = parts[f"guest:{_GUEST_PARTY_ID}"]
    predictions = guest.pop("predictions")
    metrics = _metrics(a.task, predictions, y_true_by_id)
    if a.predictions_out:
        pdf = pd.DataFrame(predictions).rename(columns={"match_id_str": "id", "label": "fate_label"})
        pdf.insert(1, "y", [y_true_by_id[i] for i in pdf["id"]])
        pdf.to_csv(a.predictions_out, index=False)
    byte_counts = [p.get("bytes_pushed") for p in parts.values()]
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_maxrss_mb = ru.ru_maxrss / 1024.0
    children_cpu_s = ru.ru_utime + ru.ru_stime

    result = {
        "tool": "FATE hetero SecureBoost (fate.ml.ensemble.HeteroSecureBoostGuest/Host)",
        "fate_version": fate.__version__,
        "mode": "fate.arch.launchers MultiProcessLauncher, context_type=local "
        "(standalone computing + standalone federation), one process per party",
        "task": a.task,
        **metrics,
        "seconds_fit": guest["seconds_fit"],
        "seconds_predict": guest["seconds_predict"],
        # parse args -> all parties reported done (excludes the launcher's fixed 10 s shutdown sleep)
        "seconds_total": t_done - t_begin,
        "seconds_launch_to_done": t_done - t_launch,
        "seconds_wall": t_end - t_begin,  # includes launcher teardown (10 s sleep + joins)
        "n_trees": a.n_trees,
        "n_trees_built": guest["n_trees_built"],  # trees per class for multiclass -> n_trees*num_class
        "num_class": guest["num_class"] if a.task != "regression" else None,
        "bytes_sent": (sum(byte_counts) if a.count_bytes else None),
        "bytes_sent_by_party": ({k: v.get("bytes_pushed") for k, v in parts.items()} if a.count_bytes else None),
        "bytes_sent_note": (
            "serialized payload pushed through FATE's standalone federation (instrumented "
            "by this script, not a FATE figure), summed over parties, no framing"
        )
        if a.count_bytes
        else "FATE exposes no byte counter; run with --count-bytes",
        # max over time of the summed RSS of all processes the run started (parties + their pools)
        "peak_mb": sampler.peak_sum / 2**20,
        "peak_single_process_mb": sampler.peak_single / 2**20,
        "max_processes": sampler.max_procs,
        "children_maxrss_mb": children_maxrss_mb,  # getrusage(RUSAGE_CHILDREN): largest waited-for child
        "cpu_seconds_children": children_cpu_s,  # user+sys of reaped descendants (parties + their pools)
        "params": {
            "n_trees": a.n_trees,
            "max_depth": a.max_depth,
            "max_bin": a.bins,
            "learning_rate": a.learning_rate,
            "l2": a.l2,
            "he": {"kind": "paillier", "key_length": a.key_bits},
            "other": "FATE defaults (min_impurity_split=1e-2, min_sample_split=2, min_leaf_node=1, "
            "min_child_weight=1, gh_pack=True, split_info_pack=True, hist_sub=True)",
        },
        "n_train": None,
        "n_test": guest["n_test"],
        "loss_history": guest["loss_history"],
        "parties": {k: {kk: vv for kk, vv in v.items() if kk not in ("role", "party_id")} for k, v in parts.items()},
    }
    result["n_train"] = int(pd.read_csv(a.guest, usecols=["id"]).shape[0])
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    keys = ("auc", "accuracy", "rmse", "seconds_fit", "seconds_total", "peak_mb", "bytes_sent")
    summary = {k: result.get(k) for k in keys}
    print(json.dumps({k: v for k, v in summary.items() if v is not None}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
