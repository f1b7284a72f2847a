"""Horizontal (federated learning) jobs: clients train one model on their own rows; the aggregator combines.

One party's side of a ``horizontal`` job.  The aggregator (a party without data) builds the model
from the job's model spec, wraps the strategy in the job's privacy and security options and runs
:func:`jointly.learn.horizontal.server.run_server`, checkpointing every round under
``<jobs>/<job id>/checkpoint`` (a job with ``horizontal.resume: <earlier job id>`` continues from
that job's last checkpoint).  Each client loads its table (CSV/Parquet with a label column) or
images (MedMNIST ``.npz``, or a folder of images with ``labels.csv``), splits off its test rows
with the job's public seed and runs :func:`jointly.learn.horizontal.client.run_client`.

Every party publishes the final global model (``output/model/weights.npz`` and ``model.json``);
the aggregator's summary holds the per-round history (time, clients, drop-outs, bytes, loss,
accuracy, AUC, epsilon), a client's summary only its own counts.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from jointly.channel import Channel
from jointly.config.job import HorizontalSpec, JobSpec
from jointly.data.federated import ImageSplit, load_image_folder, load_medmnist_npz
from jointly.data.io import atomic_write_json
from jointly.data.tables import load_table
from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget
from jointly.errors import ConfigError, DataError
from jointly.learn.horizontal import strategies as st
from jointly.learn.horizontal.client import ClientSettings, run_client
from jointly.learn.horizontal.dp import (
    DpClientFixedClipping,
    DpServerAdaptiveClipping,
    DpServerClientSideNoise,
    DpServerFixedClipping,
)
from jointly.learn.horizontal.models import ModelSpec, build_model, get_weights
from jointly.learn.horizontal.server import Checkpoint, ServerConfig, run_server
from jointly.learn.horizontal.trainer import LocalData, TrainConfig, Trainer
from jointly.runtime.vertical import numeric_frame, split_rows

if TYPE_CHECKING:  # runtime.jobs imports this module
    from jointly.runtime.jobs import PartyContext

STRATEGIES: dict[str, type[st.Strategy]] = {
    "fedavg": st.FedAvg,
    "fedprox": st.FedProx,
    "fedadam": st.FedAdam,
    "fedyogi": st.FedYogi,
    "fedadagrad": st.FedAdagrad,
    "median": st.Median,
    "trimmed_mean": st.TrimmedMean,
    "krum": st.Krum,
    "multikrum": st.MultiKrum,
}
_ALIASES = {"mu": "proximal_mu", "server_lr": "eta", "client_lr": "eta_l"}
CHECKPOINT_DIR = "checkpoint"


# -- building the pieces from the spec -------------------------------------------------------
def model_spec(h: HorizontalSpec) -> ModelSpec:
    """The job's :class:`ModelSpec` (a ConfigError names any problem)."""
    raw = dict(h.model)
    if "family" not in raw:
        raise ConfigError("horizontal.model needs a 'family' (mlp, cnn, resnet18, densenet121, vit_tiny, ...)")
    allowed = {"family", "num_classes", "in_channels", "image_size", "in_features", "hidden", "options"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"horizontal.model has unknown keys {unknown}; known: {sorted(allowed)}")
    if raw["family"] == "mlp" and "in_features" not in raw:
        raise ConfigError("horizontal.model: an mlp needs in_features (the number of feature columns)")
    try:
        spec = ModelSpec(**raw)
    except TypeError as exc:
        raise ConfigError(f"horizontal.model: {exc}") from None
    build_model(spec)  # validates every option
    return spec


def sampled_per_round(h: HorizontalSpec, clients: int) -> int:
    """How many clients each round samples when all are alive (the DP accounting's denominator)."""
    least = min_clients(h, clients)
    return min(clients, max(least, math.ceil(h.fraction * clients - 1e-9)))


def min_clients(h: HorizontalSpec, clients: int) -> int:
    if h.min_clients is not None:
        return h.min_clients
    if h.secagg:
        sa = h.secure_aggregation
        return max(2, sa.threshold if sa and sa.threshold else clients // 2 + 1)
    return max(1, clients // 2 + 1)


def build_strategy(h: HorizontalSpec, clients: int) -> st.Strategy:
    """The job's strategy, with its sampling (fraction, min_clients) and local epochs."""
    if isinstance(h.strategy, str):
        name, params = h.strategy, {}
    else:
        params = dict(h.strategy)
        name = str(params.pop("name", "fedavg"))
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    params = {_ALIASES.get(k, k): v for k, v in params.items()}
    if name in ("fedadam", "fedyogi", "fedadagrad"):
        params.setdefault("eta_l", h.lr)
    sampling = st.Sampling(fraction=h.fraction, min_clients=min_clients(h, clients))
    try:
        return cls(**params, sampling=sampling, local_epochs=h.local_epochs)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: bad parameters {sorted(params)} ({exc})") from None


def check_horizontal(spec: JobSpec) -> None:
    """Everything that can be checked before a horizontal job runs (model, strategy, secagg, DP)."""
    h = _h(spec)
    model_spec(h)
    strategy = build_strategy(h, len(spec.clients))
    if h.secagg and not strategy.is_linear:
        raise ConfigError(
            f"strategy {type(strategy).__name__} needs the individual updates: not with secure aggregation"
        )
    if h.dp is not None and not strategy.is_linear:
        raise ConfigError(f"client-level DP averages clipped updates; {type(strategy).__name__} cannot be wrapped")
    dp_wrapper(h, strategy, len(spec.clients))
    if h.dp is not None:
        norms = [
            m for m in build_model(model_spec(h)).modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]
        if norms:
            raise ConfigError(
                "client-level DP adds noise to every tensor of an update, batch-norm running statistics included "
                "(a noised variance can turn negative): use a model without BatchNorm (options: {norm: group})"
            )
    if h.dp_sgd is not None:
        from jointly.learn.horizontal.dpsgd import check_model

        check_model(build_model(model_spec(h)))


def dp_wrapper(
    h: HorizontalSpec, strategy: st.Strategy, clients: int
) -> tuple[Any, PrivacyBudget | None, RdpAccountant | None]:
    """The strategy wrapped for the job's client-level DP (or as is), with its budget and accountant.

    The accountant's sampling rate is (clients sampled per round) / (clients); one round is one step.
    """
    if h.dp is None:
        return strategy, None, None
    per_round = sampled_per_round(h, clients)
    accountant = RdpAccountant(h.dp.noise_multiplier, per_round / clients, h.dp.delta)
    budget = PrivacyBudget(h.dp.epsilon, h.dp.delta)
    wrapped: Any
    if h.dp.mode == "client":
        wrapped = DpServerClientSideNoise(strategy, budget=budget, accountant=accountant, expected_clients=per_round)
    elif h.dp.adaptive:
        wrapped = DpServerAdaptiveClipping(
            strategy,
            noise_multiplier=h.dp.noise_multiplier,
            initial_clip_norm=h.dp.clip_norm,
            budget=budget,
            accountant=accountant,
            expected_clients=per_round,
            target_quantile=h.dp.target_quantile,
            # Andrew et al. suggest m/20 for the noised count; few clients need more for a valid split of z
            clipped_count_stddev=max(per_round / 20.0, h.dp.noise_multiplier),
        )
    else:
        wrapped = DpServerFixedClipping(
            strategy,
            noise_multiplier=h.dp.noise_multiplier,
            clip_norm=h.dp.clip_norm,
            budget=budget,
            accountant=accountant,
        )
    return wrapped, budget, accountant


def _h(spec: JobSpec) -> HorizontalSpec:
    if spec.horizontal is None:
        raise ConfigError("a horizontal job needs a 'horizontal' section")
    return spec.horizontal


def _fingerprint(spec: JobSpec) -> str:
    h = _h(spec)
    keep: dict[str, Any] = {"model": h.model, "strategy": h.strategy, "clients": list(spec.clients)}
    keep["standardize"] = h.standardize
    keep |= {"secagg": h.secagg, "dp": h.dp.model_dump() if h.dp else None}
    return json.dumps(keep, sort_keys=True, default=str)


# -- the aggregator ---------------------------------------------------------------------------
def run_aggregator(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    spec = ctx.spec
    h = _h(spec)
    clients = list(spec.clients)
    channel.tolerate(clients)
    mspec = model_spec(h)
    torch.manual_seed(h.seed)
    initial = get_weights(build_model(mspec))
    strategy = build_strategy(h, len(clients))
    aggregator, budget, accountant = dp_wrapper(h, strategy, len(clients))
    checkpoint = _checkpoint(ctx, spec)

    def extra_state() -> dict[str, Any]:
        state: dict[str, Any] = {"inner": strategy.state_dict()}
        if budget is not None and accountant is not None:
            state |= {"budget": budget.state_dict(), "accountant": accountant.state_dict()}
        return state

    def on_resume(state: dict[str, Any]) -> None:
        strategy.load_state_dict(state.get("inner", {}))
        if budget is not None and accountant is not None and "budget" in state:
            accountant.load_state_dict(state["accountant"])
            budget.load_state_dict(state["budget"])

    config = ServerConfig(
        rounds=h.rounds,
        seed=h.seed,
        round_timeout=h.round_timeout_s,
        secagg=_secagg_floor(h),
        secagg_clip=h.secure_aggregation.clip if h.secure_aggregation else 100.0,
        weighted=not (h.dp is not None and h.dp.mode == "client"),
        standardize=_standardize(spec),
        eval_every=h.eval_every,
    )
    began = time.monotonic()
    result = run_server(
        channel,
        clients,
        aggregator,
        initial,
        config,
        num_classes=mspec.num_classes,
        checkpoint=checkpoint,
        progress=ctx.progress,
        extra_state=extra_state,
        on_resume=on_resume,
    )
    _publish(out, mspec, result.weights, spec, moments=result.moments)
    history = [r.to_dict() for r in result.history]
    final = dict(result.history[-1].metrics)
    atomic_write_json(out / "metrics.json", {"final": final, "rounds": history})
    summary: dict[str, Any] = {
        "kind": "horizontal",
        "role": "aggregator",
        "party": ctx.party,
        "clients": clients,
        "rounds_run": result.rounds_run,
        "rounds": history,
        "metrics": final,
        "dropped": result.dropped,
        "seconds": round(time.monotonic() - began, 3),
    }
    summary["startup_seconds"] = round(result.startup_seconds, 3)
    if result.resumed_after:
        summary["resumed_after_round"] = result.resumed_after
    if result.stop_reason:
        summary["stop_reason"] = result.stop_reason
    if budget is not None:
        summary["epsilon"] = budget.spent
        summary["delta"] = budget.delta
    return summary


def _secagg_floor(h: HorizontalSpec) -> int:
    if not h.secagg:
        return 0
    sa = h.secure_aggregation
    return sa.threshold if sa is not None and sa.threshold else 2


def _standardize(spec: JobSpec) -> bool:
    h = _h(spec)
    return h.standardize and str(h.model.get("family")) == "mlp"


def _checkpoint(ctx: PartyContext, spec: JobSpec) -> Checkpoint | None:
    if ctx.jobs_dir is None:
        return None
    h = _h(spec)
    directory = ctx.jobs_dir / ctx.job_id / CHECKPOINT_DIR
    if h.resume:
        source = ctx.jobs_dir / h.resume / CHECKPOINT_DIR
        if not (source / "state.json").is_file():
            raise ConfigError(f"job {h.resume!r} left no checkpoint on this node to resume from")
        if not directory.exists():
            shutil.copytree(source, directory)
    return Checkpoint(directory, _fingerprint(spec))


# -- a client ---------------------------------------------------------------------------------
def load_client_data(ctx: PartyContext, mspec: ModelSpec, h: HorizontalSpec) -> LocalData:
    """This client's training and test rows, shaped for the model family."""
    path = ctx.data_path()
    ref = ctx.spec.parties[ctx.party]
    if path.is_dir():
        split = load_image_folder(path, path / "labels.csv", label_column=ref.label or "label")
        train, test = split_rows(len(split), h.test_fraction, h.seed)
        return image_data(
            ImageSplit(split.images[train], split.labels[train]),
            ImageSplit(split.images[test], split.labels[test]),
            mspec,
        )
    if path.suffix.lower() == ".npz":
        splits = load_medmnist_npz(path, num_classes=max(2, mspec.num_classes))
        return image_data(splits["train"], splits["test"], mspec)
    if mspec.family != "mlp":
        raise ConfigError(f"a {mspec.family} model needs images (.npz or a folder), {path.name} is a table")
    if ref.label is None:
        raise ConfigError(f"client {ctx.party!r} must name its 'label' column")
    features = list(ref.features) if ref.features else None
    columns = None if features is None else [*features, ref.label]
    table = load_table(path, id_column=ref.id_column, columns=columns)
    if ref.label not in table.columns:
        raise DataError(str(path), f"label column {ref.label!r} not found (columns: {', '.join(table.columns)})")
    names = [c for c in table.columns if c != ref.label]
    x = numeric_frame(table, names).to_numpy(dtype=np.float32)
    if x.shape[1] != mspec.in_features:
        raise DataError(str(path), f"{x.shape[1]} feature columns, the model expects in_features={mspec.in_features}")
    if np.isnan(x).any():
        raise DataError(str(path), "missing feature values; impute them before federated training")
    y = numeric_frame(table, [ref.label]).to_numpy()[:, 0]
    if np.isnan(y).any() or (y != np.round(y)).any():
        raise DataError(str(path), f"label column {ref.label!r} must hold class numbers 0..k-1")
    train, test = split_rows(len(x), h.test_fraction, h.seed)
    return LocalData(x[train], y[train].astype(np.int64), x[test], y[test].astype(np.int64))


def image_data(train: ImageSplit, test: ImageSplit, mspec: ModelSpec) -> LocalData:
    """Training and test images as float ``(n, channels, h, w)`` in [0, 1] (uint8 scaled), checked against the model."""

    def prep(split: ImageSplit) -> tuple[np.ndarray, np.ndarray]:
        if split.labels.ndim != 1:
            raise ConfigError("multi-label image data is not supported by horizontal jobs yet")
        x = split.images.astype(np.float32)
        if split.images.dtype == np.uint8:
            x /= 255.0
        x = x[:, None, :, :] if x.ndim == 3 else np.transpose(x, (0, 3, 1, 2))
        if x.shape[1] != mspec.in_channels:
            raise DataError("images", f"{x.shape[1]} channels, the model expects in_channels={mspec.in_channels}")
        if mspec.image_size is not None and x.shape[2:] != (mspec.image_size, mspec.image_size):
            raise DataError("images", f"images of {x.shape[2]}x{x.shape[3]}, the model expects {mspec.image_size}")
        return np.ascontiguousarray(x), split.labels.astype(np.int64)

    xs, ys = prep(train)
    xt, yt = prep(test)
    return LocalData(xs, ys, xt, yt)


def run_fl_client(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    spec = ctx.spec
    h = _h(spec)
    server = h.aggregator
    clients = list(spec.clients)
    channel.tolerate([c for c in clients if c != ctx.party])
    mspec = model_spec(h)
    channel.sub("load")
    ctx.progress.update("load data", 0, 1)
    data = load_client_data(ctx, mspec, h)
    ctx.progress.update("load data", 1, 1)
    torch.manual_seed(h.seed)
    model = build_model(mspec)
    dpsgd = None
    state_file = (ctx.jobs_dir / ctx.job_id / CHECKPOINT_DIR / "dpsgd.json") if ctx.jobs_dir else None
    if h.dp_sgd is not None:
        from jointly.learn.horizontal.dpsgd import DpSgdConfig, DpSgdSession, check_model

        check_model(model)
        dpsgd = DpSgdSession(
            DpSgdConfig(
                noise_multiplier=h.dp_sgd.noise_multiplier,
                max_grad_norm=h.dp_sgd.max_grad_norm,
                delta=h.dp_sgd.delta,
                epsilon=h.dp_sgd.epsilon,
            ),
            num_examples=data.num_train,
            batch_size=min(h.batch_size, data.num_train),
        )
        if h.resume and ctx.jobs_dir is not None:
            old = ctx.jobs_dir / h.resume / CHECKPOINT_DIR / "dpsgd.json"
            if old.is_file():
                dpsgd.load_state_dict(json.loads(old.read_text()))
    config = TrainConfig(
        local_epochs=h.local_epochs,
        batch_size=h.batch_size,
        lr=h.lr,
        momentum=h.momentum,
        weight_decay=h.weight_decay,
        optimizer=h.optimizer,
        threads=ctx.workers,
    )
    trainer = Trainer(model, data, config, num_classes=mspec.num_classes, dpsgd=dpsgd)
    dp_client = None
    if h.dp is not None and h.dp.mode == "client":
        dp_client = DpClientFixedClipping(
            noise_multiplier=h.dp.noise_multiplier,
            clip_norm=h.dp.clip_norm,
            expected_clients=sampled_per_round(h, len(clients)),
        )

    def on_round(r: int) -> None:
        if dpsgd is not None and state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(state_file, dpsgd.state_dict())

    settings = ClientSettings(
        seed=h.seed,
        index=clients.index(ctx.party),
        secagg=_secagg_floor(h),
        secagg_clip=h.secure_aggregation.clip if h.secure_aggregation else 100.0,
        weighted=not (h.dp is not None and h.dp.mode == "client"),
        round_timeout=h.round_timeout_s,
        standardize=_standardize(spec),
    )
    result = run_client(
        channel, server, trainer, settings, dp_client=dp_client, progress=ctx.progress, on_round=on_round
    )
    _publish(out, mspec, result.weights, spec, moments=result.moments)
    summary: dict[str, Any] = {
        "kind": "horizontal",
        "role": "client",
        "party": ctx.party,
        "train_rows": data.num_train,
        "test_rows": len(data.x_test),
        "rounds_trained": result.rounds_trained,
        "rounds_run": result.rounds_run,
    }
    if result.stop_reason:
        summary["stop_reason"] = result.stop_reason
    if dpsgd is not None:
        summary["dp_sgd_epsilon"] = dpsgd.epsilon
    return summary


def _publish(
    out: Path,
    mspec: ModelSpec,
    weights: list[np.ndarray],
    spec: JobSpec,
    *,
    moments: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    model_dir = out / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    with (model_dir / "weights.npz").open("wb") as fh:
        np.savez(fh, *weights)
    meta: dict[str, Any] = {
        "kind": "horizontal",
        "model": {k: v for k, v in spec.horizontal.model.items()} if spec.horizontal else {},
        "family": mspec.family,
        "num_classes": mspec.num_classes,
    }
    if moments is not None:
        meta["standardize"] = {"mean": moments[0].tolist(), "std": moments[1].tolist()}
    atomic_write_json(model_dir / "model.json", meta)


def run_horizontal(ctx: PartyContext, channel: Channel, out: Path) -> dict[str, Any]:
    """This party's side of a ``horizontal`` job: the aggregator's or a client's."""
    if ctx.party == _h(ctx.spec).aggregator:
        return run_aggregator(ctx, channel, out)
    return run_fl_client(ctx, channel, out)
