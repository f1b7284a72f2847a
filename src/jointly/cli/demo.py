"""``jointly demo``: two joint jobs end to end, every party a separate node process on loopback.

* ``psi``: a bank and a telco find their common customers without showing each other the rest.
* ``vertical``: a hospital (diagnoses and some measurements) and a laboratory (other
  measurements of partly the same patients) align their patients by PSI and train a
  SecureBoost model together; the hospital's joint model is compared with the model it
  could train alone, then scores patients with both parties online.
* ``horizontal``: three clinics, each with its own labelled images (scikit-learn's digits as a
  stand-in for scans), train one CNN by federated averaging with secure aggregation: the
  aggregator (a fourth node) sees only the sum of their updates.  Each clinic's federated
  model is compared with the model it could train on its own images alone.
* ``statistics``: the hospital and the lab of the vertical demo compute the Pearson correlation
  of one of each other's columns on secret shares; only a research registry learns it.
* ``query``: a bank checks 1,000 applicants against a credit bureau's 20,000-entry blacklist
  with labeled PSI: the bank learns who is listed and why, the bureau only how many were asked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from jointly.cli.progress import JobProgressView
from jointly.config.federation import init_federation
from jointly.config.job import JobSpec
from jointly.data.bundled import (
    HORIZONTAL_CLIENTS,
    ID_COLUMN,
    VERTICAL_ID_COLUMN,
    VERTICAL_LABEL,
    demo_horizontal_images,
    demo_psi_tables,
    demo_query_tables,
    demo_vertical_tables,
)
from jointly.data.io import atomic_write_json
from jointly.runtime.client import JobClient, JobOutcome
from jointly.runtime.launcher import LocalFederation

DEMOS = ("psi", "vertical", "horizontal", "statistics", "query")
#: the vertical demo's model: small enough to train in seconds on two cores with 2048-bit Paillier
DEMO_SECUREBOOST = {"n_trees": 5, "max_depth": 3, "learning_rate": 0.3, "max_bins": 16}
#: the horizontal demo: a small CNN on 8x8 digits, secure aggregation on
DEMO_HORIZONTAL: dict[str, Any] = {
    "aggregator": "hub",
    "model": {"family": "cnn", "num_classes": 10, "in_channels": 1, "image_size": 8},
    "strategy": "fedavg",
    "rounds": 10,
    "lr": 0.05,
    "momentum": 0.9,
    "secure_aggregation": {"enabled": True},
}


def run_demo(
    root: Path, console: Console, *, workers: int | None = None, only: tuple[str, ...] = DEMOS
) -> dict[str, Any]:
    """Run the chosen demos, each in its own local federation; print and save the results."""
    run_dir = (root / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    summary: dict[str, Any] = {"run_dir": str(run_dir)}
    if "psi" in only:
        summary["psi"] = _psi_demo(run_dir / "psi", console, workers)
    if "vertical" in only:
        summary["vertical"] = _vertical_demo(run_dir / "vertical", console, workers)
    if "horizontal" in only:
        summary["horizontal"] = _horizontal_demo(run_dir / "horizontal", console, workers)
    if "statistics" in only:
        summary["statistics"] = _statistics_demo(run_dir / "statistics", console, workers)
    if "query" in only:
        summary["query"] = _query_demo(run_dir / "query", console, workers)
    atomic_write_json(run_dir / "result.json", summary)
    console.print(f"[green]done[/]: results written to {run_dir / 'result.json'}")
    return summary


def _run(local: LocalFederation, console: Console, spec: JobSpec, as_party: str) -> tuple[str, JobOutcome]:
    with JobClient(local.federation, as_party) as client:
        job_id = client.submit(spec)
        console.print(f"submitted job [bold]{job_id}[/] as {as_party}")
        with JobProgressView(console) as view:
            outcome = client.watch(job_id, list(spec.party_names), on_update=view.update)
    failure = outcome.failure()
    if not outcome.succeeded and failure is not None:
        raise failure
    return job_id, outcome


def _results(local: LocalFederation, spec: JobSpec, job_id: str) -> dict[str, dict[str, Any]]:
    # the demo plays every party, so it may read each party's own outputs from its node directory
    return {
        party: json.loads((local.workdir(party) / "jobs" / job_id / "output" / "result.json").read_text())
        for party in spec.party_names
    }


def _psi_demo(run_dir: Path, console: Console, workers: int | None) -> dict[str, Any]:
    console.print(Panel.fit(f"private set intersection between a bank and a telco\nrun directory: {run_dir}"))
    fed_path = init_federation(["bank", "telco"], run_dir / "federation", name="demo-psi")
    tables = demo_psi_tables(run_dir / "data")
    spec = JobSpec.from_dict(
        {
            "name": "demo-customer-overlap",
            "kind": "psi",
            "parties": {p: {"data": str(path), "id_column": ID_COLUMN} for p, path in tables.items()},
            "psi": {"mode": "intersection", "receivers": ["bank", "telco"]},
        }
    )
    with LocalFederation(fed_path, run_dir, data_dir=run_dir / "data", workers=workers) as local:
        console.print(f"started nodes: {', '.join(f'{p} (pid {pr.pid})' for p, pr in local.processes.items())}")
        job_id, outcome = _run(local, console, spec, "bank")
        results = _results(local, spec, job_id)
        table = Table(title=f"job {job_id}")
        for col in ("party", "input rows", "intersection", "bytes sent", "output"):
            table.add_column(col)
        for party, result in results.items():
            status = outcome.views[party] or {}
            table.add_row(
                party,
                str(result["input_rows"]),
                str(result.get("intersection_size", "-")),
                f"{status.get('bytes_sent', 0):,}",
                str(local.workdir(party) / "jobs" / job_id / "output"),
            )
    console.print(table)
    return {"job_id": job_id, "results": results}


def _vertical_demo(run_dir: Path, console: Console, workers: int | None) -> dict[str, Any]:
    console.print(
        Panel.fit(
            "vertical SecureBoost: a hospital (diagnoses + 10 measurements) and a lab (20 other measurements)\n"
            f"align their patients by PSI and train one model; run directory: {run_dir}"
        )
    )
    fed_path = init_federation(["hospital", "lab"], run_dir / "federation", name="demo-vertical")
    tables = demo_vertical_tables(run_dir / "data")
    parties: dict[str, dict[str, Any]] = {
        "hospital": {"data": str(tables["hospital"]), "id_column": VERTICAL_ID_COLUMN, "label": VERTICAL_LABEL},
        "lab": {"data": str(tables["lab"]), "id_column": VERTICAL_ID_COLUMN},
    }
    spec = JobSpec.from_dict(
        {
            "name": "demo-diagnosis",
            "kind": "secureboost",
            "parties": parties,
            "vertical": {"test_fraction": 0.3, "seed": 7},
            "secureboost": DEMO_SECUREBOOST,
        }
    )
    with LocalFederation(fed_path, run_dir, data_dir=run_dir / "data", workers=workers) as local:
        console.print(f"started nodes: {', '.join(f'{p} (pid {pr.pid})' for p, pr in local.processes.items())}")
        job_id, outcome = _run(local, console, spec, "hospital")
        results = _results(local, spec, job_id)
        guest = results["hospital"]
        joint, alone = guest["metrics"], guest.get("baseline", {})
        table = Table(title=f"job {job_id}: held-out patients ({guest['test_rows']} of {guest['aligned_rows']})")
        for col in ("model", "AUC", "KS", "accuracy", "log loss"):
            table.add_column(col)
        for label, m in (("hospital + lab (joint)", joint), ("hospital alone", alone)):
            if m:
                table.add_row(label, *(f"{m[k]:.4f}" for k in ("auc", "ks", "accuracy", "log_loss")))
        console.print(table)
        bytes_sent = {p: (outcome.views[p] or {}).get("bytes_sent", 0) for p in spec.party_names}
        console.print(f"bytes sent: {', '.join(f'{p} {b:,}' for p, b in bytes_sent.items())}")

        scoring = JobSpec.from_dict(
            {
                "name": "demo-diagnosis-scoring",
                "kind": "predict",
                "parties": {p: {k: v for k, v in ref.items() if k != "label"} for p, ref in parties.items()},
                "predict": {"model": job_id},
            }
        )
        score_id, _ = _run(local, console, scoring, "hospital")
        scored = _results(local, scoring, score_id)
        predictions = local.workdir("hospital") / "jobs" / score_id / "output" / "predictions.csv"
        console.print(
            f"federated scoring: {scored['hospital']['scored_rows']} patients scored; "
            f"the hospital's scores are in {predictions}; the lab received none"
        )
    return {"job_id": job_id, "results": results, "scoring_job_id": score_id, "scoring": scored}


def _horizontal_demo(run_dir: Path, console: Console, workers: int | None) -> dict[str, Any]:
    clients = list(HORIZONTAL_CLIENTS)
    console.print(
        Panel.fit(
            f"horizontal federated learning: {', '.join(clients)} each hold their own labelled images and train\n"
            "one CNN by federated averaging with secure aggregation; the aggregator (hub) sees only sums\n"
            f"run directory: {run_dir}"
        )
    )
    fed_path = init_federation(["hub", *clients], run_dir / "federation", name="demo-horizontal")
    files = demo_horizontal_images(run_dir / "data")
    spec = JobSpec.from_dict(
        {
            "name": "demo-federated-cnn",
            "kind": "horizontal",
            "parties": {"hub": {}, **{c: {"data": str(files[c])} for c in clients}},
            "horizontal": DEMO_HORIZONTAL,
        }
    )
    with LocalFederation(fed_path, run_dir, data_dir=run_dir / "data", workers=workers) as local:
        console.print(f"started nodes: {', '.join(f'{p} (pid {pr.pid})' for p, pr in local.processes.items())}")
        job_id, _ = _run(local, console, spec, "hub")
        results = _results(local, spec, job_id)
    agg = results["hub"]
    table = Table(title=f"job {job_id}: federated evaluation on the clinics' held-out images")
    for col in ("round", "seconds", "clients", "loss", "accuracy", "AUC", "bytes sent (hub)"):
        table.add_column(col)
    for r in agg["rounds"]:
        table.add_row(
            str(r["round"]),
            f"{r['seconds']:.2f}",
            str(len(r.get("contributed", []))),
            f"{r.get('loss', float('nan')):.4f}",
            f"{r.get('accuracy', float('nan')):.4f}",
            f"{r.get('auc', float('nan')):.4f}",
            f"{r['bytes_sent']:,}",
        )
    console.print(table)
    alone = _local_baselines(files, spec)
    console.print(
        f"federated model: accuracy {agg['metrics']['accuracy']:.4f} on all {agg['metrics']['test_rows']} "
        "held-out images; each clinic alone (same epochs, its own images): "
        + ", ".join(f"{c} {a:.4f}" for c, a in alone.items())
    )
    return {"job_id": job_id, "results": results, "alone": alone}


def _local_baselines(files: dict[str, Path], spec: JobSpec) -> dict[str, float]:
    """Each clinic trains the same model on its own images only (the demo plays every party)."""
    import torch

    from jointly.data.federated import load_medmnist_npz
    from jointly.learn.horizontal.models import build_model
    from jointly.learn.horizontal.trainer import TrainConfig, Trainer
    from jointly.runtime.horizontal import image_data, model_spec

    h = spec.horizontal
    if h is None:
        raise ValueError("not a horizontal job")
    mspec = model_spec(h)
    out = {}
    for name, path in files.items():
        splits = load_medmnist_npz(path, num_classes=mspec.num_classes)
        data = image_data(splits["train"], splits["test"], mspec)
        torch.manual_seed(h.seed)
        trainer = Trainer(build_model(mspec), data, TrainConfig(lr=h.lr, momentum=h.momentum), num_classes=10)
        weights = trainer.initial_weights()
        weights, _ = trainer.fit(weights, seed=h.seed, epochs=h.rounds * h.local_epochs)
        stats = trainer.evaluate(weights)
        out[name] = stats.correct / max(stats.n, 1)
    return out


def _statistics_demo(run_dir: Path, console: Console, workers: int | None) -> dict[str, Any]:
    console.print(
        Panel.fit(
            "joint statistics on secret shares: the hospital's mean radius vs the lab's worst radius of the same\n"
            "patients (aligned by PSI); the two compute on shares, only the registry learns the correlation\n"
            f"run directory: {run_dir}"
        )
    )
    parties = ["hospital", "lab", "registry"]
    fed_path = init_federation(parties, run_dir / "federation", name="demo-statistics")
    tables = demo_vertical_tables(run_dir / "data")
    spec = JobSpec.from_dict(
        {
            "name": "demo-joint-correlation",
            "kind": "mpc",
            "parties": {
                "hospital": {"data": str(tables["hospital"]), "id_column": VERTICAL_ID_COLUMN},
                "lab": {"data": str(tables["lab"]), "id_column": VERTICAL_ID_COLUMN},
                "registry": {},
            },
            "mpc": {
                "compute": ["hospital", "lab"],
                "results": ["registry"],
                "dealer": "registry",
                "statistic": "pearson",
                "layout": "vertical",
                "columns": {"hospital": ["mean_radius"], "lab": ["worst_radius"]},
            },
        }
    )
    with LocalFederation(fed_path, run_dir, data_dir=run_dir / "data", workers=workers) as local:
        job_id, _ = _run(local, console, spec, "registry")
        results = _results(local, spec, job_id)
    value = results["registry"]["result"]
    plain = _plain_pearson(tables)
    console.print(
        f"registry learns Pearson r = {_scalar(value):.6f} over {results['hospital'].get('aligned_rows', '?')} "
        f"shared patients (in the clear it would be {plain:.6f}); hospital and lab learn no result"
    )
    return {"job_id": job_id, "results": results, "plaintext": plain}


def _scalar(value: Any) -> float:
    if isinstance(value, dict):
        for key in ("pearson", "value", "r"):
            if key in value:
                return float(value[key])
    return float(value)


def _plain_pearson(tables: dict[str, Path]) -> float:
    """What the registry's number should be (the demo plays every party, so it may check)."""
    import pandas as pd

    a = pd.read_csv(tables["hospital"])[[VERTICAL_ID_COLUMN, "mean_radius"]]
    b = pd.read_csv(tables["lab"])[[VERTICAL_ID_COLUMN, "worst_radius"]]
    joined = a.merge(b, on=VERTICAL_ID_COLUMN)
    return float(joined["mean_radius"].corr(joined["worst_radius"]))


def _query_demo(run_dir: Path, console: Console, workers: int | None) -> dict[str, Any]:
    console.print(
        Panel.fit(
            "blacklist check with labeled PSI: a bank looks 1,000 applicants up in a bureau's 20,000-entry\n"
            "blacklist; it learns who is listed and why, the bureau learns only that 1,000 ids were asked\n"
            f"run directory: {run_dir}"
        )
    )
    fed_path = init_federation(["bank", "bureau"], run_dir / "federation", name="demo-query")
    tables = demo_query_tables(run_dir / "data")
    spec = JobSpec.from_dict(
        {
            "name": "demo-blacklist-check",
            "kind": "query",
            "parties": {
                "bank": {"data": str(tables["bank"]), "id_column": ID_COLUMN},
                "bureau": {"data": str(tables["bureau"]), "id_column": ID_COLUMN, "label": "reason"},
            },
            "query": {"client": "bank", "server": "bureau", "method": "labeled_psi"},
        }
    )
    with LocalFederation(fed_path, run_dir, data_dir=run_dir / "data", workers=workers) as local:
        job_id, _ = _run(local, console, spec, "bank")
        first = _results(local, spec, job_id)
        started = time.monotonic()
        again_id, _ = _run(local, console, spec, "bank")  # the bank's node reuses the downloaded table
        again_seconds = time.monotonic() - started
        again = _results(local, spec, again_id)
        hits = local.workdir("bank") / "jobs" / job_id / "output" / "results.csv"
    bank = first["bank"]
    console.print(
        f"bank: {bank['found']} of {bank['ids_asked']} applicants are blacklisted (with reasons in {hits}); "
        f"bureau learned: {first['bureau'].get('ids_asked')} ids asked, nothing else; "
        f"a second check, with the table cached, took {again_seconds:.1f}s"
    )
    return {"job_id": job_id, "results": first, "again": again, "again_seconds": again_seconds}
