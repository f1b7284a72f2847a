"""One face for every vertical model kind, so the job runner treats SecureBoost and hetero LR alike.

Each function dispatches on the job kind (``secureboost`` or ``hetero_lr``) to the
estimators of :mod:`jointly.learn.vertical`; the runner never touches their
specifics.  Scores are returned in one convention: the probability of class 1
for binary tasks, an ``(n, classes)`` matrix for multi-class, the prediction for
regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from jointly.channel import Channel
from jointly.config.job import JobSpec
from jointly.errors import ConfigError
from jointly.learn.vertical.hetero_lr import HeteroLRArbiter, HeteroLRGuest, HeteroLRHost
from jointly.learn.vertical.hetero_lr_common import HeteroLRConfig, Scaler, reference_fit
from jointly.learn.vertical.secureboost import (
    SecureBoostConfig,
    SecureBoostGuest,
    SecureBoostHost,
    fit_reference,
)
from jointly.progress import Progress

ModelConfig = SecureBoostConfig | HeteroLRConfig
Estimator = SecureBoostGuest | SecureBoostHost | HeteroLRGuest | HeteroLRHost | None
ARBITER_FORMAT = "jointly.hetero_lr.arbiter"


def build(kind: str, params: Mapping[str, Any]) -> ModelConfig:
    """The model's config object from a job's model section; unknown or bad parameters are a ConfigError."""
    cls: type[SecureBoostConfig] | type[HeteroLRConfig]
    if kind == "secureboost":
        cls = SecureBoostConfig
    elif kind == "hetero_lr":
        cls = HeteroLRConfig
    else:
        raise ConfigError(f"{kind!r} is not a vertical model kind")
    try:
        return cls(**dict(params))
    except TypeError as exc:
        raise ConfigError(f"{kind} parameters: {exc}") from None


def task_of(kind: str, config: object) -> str:
    if isinstance(config, SecureBoostConfig):
        return config.task
    return "binary"


def fit_guest(
    kind: str, config: object, channel: Channel, X: pd.DataFrame, y: np.ndarray, spec: JobSpec, *, progress: Progress
) -> Estimator:
    if isinstance(config, SecureBoostConfig):
        return SecureBoostGuest(config, channel, hosts=spec.hosts, progress=progress).fit(X, y)
    if isinstance(config, HeteroLRConfig):
        guest = HeteroLRGuest(config, channel, hosts=spec.hosts, arbiter=spec.arbiter, progress=progress)
        return guest.fit(X.to_numpy(), y)
    raise ConfigError(f"no guest for {kind}")


def fit_host(
    kind: str, config: object, channel: Channel, X: pd.DataFrame, spec: JobSpec, *, progress: Progress
) -> Estimator:
    if isinstance(config, SecureBoostConfig):
        return SecureBoostHost(config, channel, guest=spec.guest, progress=progress).fit(X)
    if isinstance(config, HeteroLRConfig):
        return HeteroLRHost(config, channel, guest=spec.guest, arbiter=spec.arbiter, progress=progress).fit(
            X.to_numpy()
        )
    raise ConfigError(f"no host for {kind}")


def fit_arbiter(kind: str, config: object, channel: Channel, spec: JobSpec, *, progress: Progress) -> dict[str, Any]:
    """Run the arbiter's side of training; its model part records only what it did (it keeps no weights)."""
    if not isinstance(config, HeteroLRConfig):
        raise ConfigError(f"a {kind} job has no arbiter")
    arbiter = HeteroLRArbiter(config, channel, guest=spec.guest, hosts=spec.hosts, progress=progress).fit()
    return {
        "format": ARBITER_FORMAT,
        "n_iter": arbiter.n_iter_,
        "converged": arbiter.converged_,
        "loss_history": [float(v) for v in arbiter.loss_history_],
    }


def part_of(kind: str, fitted: Estimator) -> dict[str, Any]:
    """The fitted party's model part, as JSON-safe values."""
    if fitted is None:
        raise ConfigError(f"no fitted {kind} model")
    return dict(fitted.to_dict())


def load_part(kind: str, role: str, part: Mapping[str, Any], channel: Channel) -> Estimator:
    """Rebuild a party's estimator from its stored part, bound to a prediction job's channel."""
    if role == "arbiter":
        return None
    if kind == "secureboost":
        if role == "guest":
            return SecureBoostGuest.from_dict(part, channel)
        return SecureBoostHost.from_dict(part, channel)
    if kind == "hetero_lr":
        if role == "guest":
            return HeteroLRGuest.from_dict(part, channel)
        return HeteroLRHost.from_dict(part, channel)
    raise ConfigError(f"{kind!r} is not a vertical model kind")


def predict_guest(fitted: Estimator, X: pd.DataFrame) -> np.ndarray:
    """The guest's scores for ``X``; every host must run :func:`serve_host` on its rows at the same time."""
    if isinstance(fitted, SecureBoostGuest):
        return np.asarray(fitted.predict_scores(X), dtype=np.float64)
    if isinstance(fitted, HeteroLRGuest):
        return np.asarray(fitted.predict_proba(X.to_numpy())[:, 1], dtype=np.float64)
    raise ConfigError("only the guest's model part can score rows")


def serve_host(fitted: Estimator, X: pd.DataFrame) -> None:
    """A host's side of one :func:`predict_guest` call: it answers about its splits or scores, and learns no score."""
    if isinstance(fitted, SecureBoostHost):
        fitted.serve_predict(X)
    elif isinstance(fitted, HeteroLRHost):
        fitted.serve_predict(X.to_numpy())
    else:
        raise ConfigError("only a host's model part can serve a prediction")


def history_of(fitted: Estimator) -> list[dict[str, float]]:
    """Per tree (or per epoch) training metrics of a fitted guest, for the report."""
    if isinstance(fitted, SecureBoostGuest):
        return [dict(h) for h in fitted.history_]
    if isinstance(fitted, HeteroLRGuest):
        return [{"epoch": i + 1, "loss": float(v)} for i, v in enumerate(fitted.loss_history_)]
    return []


def fit_predict_local(config: object, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame) -> np.ndarray:
    """The guest-only baseline: the same algorithm on the guest's own features, in plaintext, same split."""
    if isinstance(config, SecureBoostConfig):
        return np.asarray(fit_reference(config, X_train, y_train).predict_scores(X_test), dtype=np.float64)
    if isinstance(config, HeteroLRConfig):
        model = reference_fit(X_train.to_numpy(), y_train, [], config)
        scaler = Scaler.fit(X_train.to_numpy())
        z = scaler.transform(X_test.to_numpy(), "guest features") @ model.guest_coef + model.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)
    raise ConfigError("no baseline for this model")
