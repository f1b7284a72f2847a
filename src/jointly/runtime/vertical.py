"""Vertical joint modeling jobs: align rows by PSI, train SecureBoost or hetero LR, evaluate, keep model parts.

One party's side of a ``secureboost`` or ``hetero_lr`` job, in stages (each a
channel namespace, so a failure names the stage):

``load``
    read this party's table: its feature columns (and, for the guest, its label).
``align``
    ECDH PSI among the data parties, every data party a receiver, so all of them
    order the common rows the same way (the intersection is revealed to the data
    parties, as in every vertical FL system; the arbiter takes no part).  With
    ``vertical.align: false`` the tables must already hold the same ids, which the
    parties check by comparing a salted hash of the sorted id list.
``train``
    the model protocol on the training rows (see its module for what each party learns).
``evaluate``
    federated scoring of the held-out rows: the guest alone gets the scores and
    computes the metrics; it also fits the guest-only model on the same split (in
    plaintext, on its own data), so the report shows the gain from joining.

The split into training and test rows is drawn from the job's public seed by
every party on its own, so it costs no message and reveals nothing.  Each
party publishes only its own model part (``output/model``) and its own summary;
a host's summary holds no scores or metrics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jointly.channel import Channel
from jointly.config.job import JobSpec
from jointly.data.io import atomic_write_json, write_table
from jointly.data.tables import Table, load_table
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.learn.metrics import compare, evaluate, roc_curve
from jointly.learn.vertical.memory import release_memory
from jointly.protocols.psi import PsiConfig, run_psi
from jointly.runtime import model_kinds as vmodels
from jointly.runtime.models import ModelInfo, ModelStore, new_model_info, write_model_part

if TYPE_CHECKING:  # runtime.jobs imports this module
    from jointly.runtime.jobs import PartyContext


@dataclass
class PartyData:
    """This party's aligned rows: ids in the common order, features, and the guest's labels."""

    ids: list[str | int]
    features: pd.DataFrame
    labels: np.ndarray | None


# -- loading and alignment ------------------------------------------------------------------
def load_party_table(ctx: PartyContext, *, features: Sequence[str] | None = None, with_label: bool) -> Table:
    """Read this party's table with the feature (and label) columns the job or the model names."""
    ref = ctx.spec.parties[ctx.party]
    wanted = list(features) if features is not None else (list(ref.features) if ref.features else None)
    label = ref.label if with_label else None
    columns = None if wanted is None else [*wanted, *([label] if label else [])]
    table = load_table(ctx.data_path(), id_column=ref.id_column, columns=columns)
    if label is not None and label not in table.columns:
        raise DataError(str(table.path), f"label column {label!r} not found (columns: {', '.join(table.columns)})")
    return table


def numeric_frame(table: Table, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns as float64; a non-numeric cell is a DataError naming its row and column."""
    out = {}
    for name in columns:
        raw = table.frame[name]
        values = pd.to_numeric(raw, errors="coerce")
        # only cells that became missing can be bad: text them alone (texting a million numbers takes
        # seconds, holding the GIL the node's heartbeats need)
        suspect = np.flatnonzero((values.isna() & raw.notna()).to_numpy())
        if suspect.size:
            cells = raw.iloc[suspect]
            bad = suspect[(cells.astype(str).str.strip() != "").to_numpy()]
            if bad.size:
                row = int(bad[0])
                raise DataError(str(table.path), f"column {name!r} is not numeric: {raw.iloc[row]!r}", row=row + 2)
        out[name] = values.astype(np.float64).to_numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(len(table)))


def align(
    channel: Channel, table: Table, parties: Sequence[str], *, use_psi: bool, job_id: str, workers: int | None
) -> list[int]:
    """Row positions of this party's table in the common order of ``parties`` (PSI or an id-list check)."""
    ids = table.ids
    among = channel.among(parties)
    if use_psi:
        config = PsiConfig(mode="intersection", receivers=tuple(parties), workers=workers)
        result = run_psi(among.sub("psi"), ids, config)
        if result.intersection is None:  # pragma: no cover - every data party is a receiver
            raise ProtocolViolation("PSI gave no intersection to a receiver")
        position = {str(v): i for i, v in enumerate(ids)}
        rows = [position[str(v)] for v in result.intersection]
        if not rows:
            raise DataError(str(table.path), "no ids in common with the other parties; nothing to learn from")
        return rows
    order = sorted(range(len(ids)), key=lambda i: str(ids[i]))
    digest = hashlib.sha256(job_id.encode())
    for i in order:
        digest.update(str(ids[i]).encode() + b"\x00")
    mine = digest.digest()
    check = among.sub("same-ids")
    check.broadcast("digest", mine)
    theirs = check.gather("digest")
    differ = sorted(p for p, d in theirs.items() if d != mine)
    if differ:
        raise DataError(str(table.path), f"vertical.align is off but the ids differ from those of {', '.join(differ)}")
    return order


def split_rows(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test positions of ``n`` aligned rows; every party draws the same from the public seed."""
    if test_fraction <= 0:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng([seed, n]).permutation(n)
    n_test = max(1, round(n * test_fraction))
    if n - n_test < 2:
        raise DataError("aligned rows", f"only {n} rows in common: too few to hold out {test_fraction:.0%} for testing")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# -- training -------------------------------------------------------------------------------
def run_training(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    """This party's side of a ``secureboost`` or ``hetero_lr`` job; returns its summary."""
    spec = ctx.spec
    kind = spec.kind
    guest, arbiter = spec.guest, spec.arbiter
    role = "guest" if ctx.party == guest else ("arbiter" if ctx.party == arbiter else "host")
    model = vmodels.build(kind, spec.model_params)
    summary: dict[str, Any] = {"kind": kind, "party": ctx.party, "role": role, "guest": guest}
    if role == "arbiter":
        ctx.progress.update("train", 0, 1)
        part = vmodels.fit_arbiter(kind, model, channel.sub("train"), spec, progress=ctx.progress)
        _publish_model(ctx, out, role, (), part)
        return summary
    channel.sub("load")
    ctx.progress.update("load data", 0, 1)
    table = load_party_table(ctx, with_label=role == "guest")
    ref = spec.parties[ctx.party]
    feature_names = [c for c in table.columns if c != ref.label]
    if not feature_names:
        raise DataError(str(table.path), "no feature columns to learn from")
    frame = numeric_frame(table, feature_names)
    labels = None
    if role == "guest":
        assert ref.label is not None  # the spec validator guarantees the guest names its label
        labels = _labels(table, ref.label)
    ctx.progress.update("load data", 1, 1)
    summary["input_rows"] = len(table)
    summary["features"] = len(feature_names)
    release_memory()  # parsing leaves reference cycles (pandas) worth several times the table

    ctx.progress.update("align rows", 0, 1)
    channel.sub("align")
    params = spec.vertical_params
    rows = align(
        channel.sub("align"), table, spec.data_parties, use_psi=params.align, job_id=ctx.job_id, workers=ctx.workers
    )
    ctx.progress.update("align rows", 1, 1)
    summary["aligned_rows"] = len(rows)
    del table  # the raw columns and ids: what follows needs the aligned numbers only
    X = frame.iloc[rows].reset_index(drop=True)
    del frame
    y = labels[rows] if labels is not None else None
    del labels, rows
    train, test = split_rows(len(X), params.test_fraction, params.seed)
    summary["train_rows"], summary["test_rows"] = len(train), len(test)
    X_train = X.iloc[train] if len(test) else X  # no held-out rows: train on X itself, not on a copy
    release_memory()  # before training, the longest stage: give back what loading and PSI used

    train_ch = channel.sub("train")
    if role == "guest":
        assert y is not None
        fitted = vmodels.fit_guest(kind, model, train_ch, X_train, y[train], spec, progress=ctx.progress)
    else:
        fitted = vmodels.fit_host(kind, model, train_ch, X_train, spec, progress=ctx.progress)
    del X_train
    _publish_model(ctx, out, role, tuple(feature_names), vmodels.part_of(kind, fitted))

    if len(test):
        channel.sub("evaluate")  # the stage; the estimators message under their own training namespace
        ctx.progress.update("evaluate", 0, 1)
        if role == "guest":
            assert y is not None
            scores = vmodels.predict_guest(fitted, X.iloc[test])
            summary.update(_evaluate(ctx, out, model, X, y, train, test, scores))
        else:
            vmodels.serve_host(fitted, X.iloc[test])
        ctx.progress.update("evaluate", 1, 1)
    if role == "guest":
        summary["history"] = vmodels.history_of(fitted)
    return summary


def _labels(table: Table, label: str) -> np.ndarray:
    raw = table.frame[label]
    values = pd.to_numeric(raw, errors="coerce")
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DataError(str(table.path), f"label {label!r} is missing or not numeric: {raw.iloc[row]!r}", row=row + 2)
    return values.to_numpy(dtype=np.float64)


def _evaluate(
    ctx: PartyContext,
    out: Path,
    model: object,
    X: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    scores: np.ndarray,
) -> dict[str, Any]:
    """The guest's metrics of the joint model, and of the guest-only model on the same split."""
    task = vmodels.task_of(ctx.spec.kind, model)
    joint = evaluate(task, y[test], scores)
    report: dict[str, Any] = {"task": task, "metrics": joint}
    if ctx.spec.vertical_params.baseline:
        ctx.progress.update("guest-only baseline", 0, 1)
        base_scores = vmodels.fit_predict_local(model, X.iloc[train], y[train], X.iloc[test])
        baseline = evaluate(task, y[test], base_scores)
        report["baseline"] = baseline
        report["gain"] = compare(joint, baseline)
        ctx.progress.update("guest-only baseline", 1, 1)
    if task == "binary":
        fpr, tpr = roc_curve(y[test], scores)[:2]
        report["roc"] = {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}
    atomic_write_json(out / "metrics.json", report)
    return {"metrics": joint, **({"baseline": report["baseline"]} if "baseline" in report else {})}


def _publish_model(ctx: PartyContext, out: Path, role: str, features: tuple[str, ...], part: dict[str, Any]) -> None:
    info = new_model_info(
        model_id=ctx.job_id,
        name=ctx.spec.name,
        kind=ctx.spec.kind,
        party=ctx.party,
        role=role,
        guest=ctx.spec.guest,
        parties=ctx.spec.party_names,
        features=features,
    )
    write_model_part(out, info, part)


# -- prediction -----------------------------------------------------------------------------
def run_prediction(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    """This party's side of a ``predict`` job: score new rows with the stored parts of a vertical model.

    The guest gets the scores (written to ``predictions.csv``); hosts get nothing back.
    """
    spec = ctx.spec
    assert spec.predict is not None  # the spec validator guarantees it
    if ctx.jobs_dir is None:
        raise ConfigError("this node keeps no models (no jobs directory)")
    info, part = ModelStore(ctx.jobs_dir).load(spec.predict.model)
    _check_model_parties(info, spec)
    summary: dict[str, Any] = {"kind": "predict", "party": ctx.party, "role": info.role, "model": info.model_id}
    summary["model_version"] = f"{info.name}@v{info.version}"
    if info.role == "arbiter":
        return summary  # the arbiter keeps no weights: nothing to do in scoring
    channel.sub("load")
    table = load_party_table(ctx, features=info.features, with_label=False)
    frame = numeric_frame(table, info.features)
    summary["input_rows"] = len(table)
    data_parties = tuple(p for p in info.parties if spec.parties[p].has_data)
    rows = align(
        channel.sub("align"), table, data_parties, use_psi=spec.predict.align, job_id=ctx.job_id, workers=ctx.workers
    )
    summary["scored_rows"] = len(rows)
    X = frame.iloc[rows].reset_index(drop=True)
    fitted = vmodels.load_part(info.kind, info.role, part, channel.sub("score"))
    if info.role == "guest":
        scores = vmodels.predict_guest(fitted, X)
        ids = [table.ids[i] for i in rows]
        ref = spec.parties[ctx.party]
        write_table(_score_frame(ref.id_column, ids, scores), out / "predictions.csv")
        summary["predictions_file"] = "predictions.csv"
    else:
        vmodels.serve_host(fitted, X)
    return summary


def _check_model_parties(info: ModelInfo, spec: JobSpec) -> None:
    if set(info.parties) != set(spec.party_names):
        raise ConfigError(
            f"model {info.model_id} was trained by {', '.join(info.parties)}; "
            f"this job has {', '.join(spec.party_names)}"
        )
    if info.kind not in ("secureboost", "hetero_lr"):
        raise ConfigError(f"model {info.model_id} is a {info.kind} model, which cannot score rows")


def _score_frame(id_column: str, ids: list[str | int], scores: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({id_column: [str(i) for i in ids]})
    if scores.ndim == 1:
        frame["score"] = scores
    else:
        for k in range(scores.shape[1]):
            frame[f"p{k}"] = scores[:, k]
    return frame
