"""Losses of SecureBoost: gradients, hessians, base scores, outputs and metrics.  Guest only.

Raw scores ``F`` have one column per output (one for binary and regression, ``n_classes`` for
multiclass).  ``g`` and ``h`` are the first and second derivatives of the loss in ``F``:

* binary, logistic loss: ``p = sigmoid(F)``, ``g = p - y``, ``h = p (1 - p)``;
* multiclass, softmax cross-entropy: ``p = softmax(F)``, ``g_k = p_k - [y = k]``,
  ``h_k = p_k (1 - p_k)`` (the diagonal of the Hessian; trees are multi-output, see :mod:`.tree`);
* regression, squared error on standardised labels ``z = (y - mean) / scale``: ``g = F - z``,
  ``h = 1``; predictions are ``mean + scale * F``.  Standardising makes the fixed-point precision
  relative to the spread of the labels; it changes nothing else except that ``min_split_gain``
  is measured in standardised units.

``gradient_bounds`` gives the bounds on ``|g|`` and ``h`` that size the packed slots.  For the
classification losses they are constants; for regression ``|g|`` is bounded per tree by the next
power of two of the largest residual, so hosts learn that power of two (a documented leakage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, log_softmax, softmax

from jointly.errors import DataError
from jointly.learn import metrics
from jointly.learn.vertical.secureboost.config import SecureBoostConfig

FloatArray = NDArray[np.float64]
PROB_EPS = 1e-6


class Objective(Protocol):
    """What the booster needs from a loss."""

    @property
    def n_outputs(self) -> int: ...

    def base_score(self) -> FloatArray: ...
    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]: ...
    def gradient_bounds(self, g: FloatArray) -> tuple[float, float]: ...
    def loss(self, y: FloatArray, raw: FloatArray) -> float: ...
    def output(self, raw: FloatArray) -> FloatArray: ...
    def metrics(self, y: FloatArray, raw: FloatArray) -> dict[str, float]: ...
    def params(self) -> dict[str, float]: ...


def check_labels(y: object, config: SecureBoostConfig, n_rows: int) -> FloatArray:
    """Labels as float64, checked for the task; raises :class:`~jointly.errors.DataError`."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError("labels", f"labels must be numeric: {exc}") from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError("labels", f"labels must be one column, got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise DataError("labels", f"{arr.shape[0]} labels for {n_rows} rows")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError("labels", "labels must be finite numbers (no NaN)", row=int(np.argmax(bad)))
    if config.task in ("binary", "multiclass"):
        k = config.n_classes
        wrong = (arr != np.round(arr)) | (arr < 0) | (arr >= k)
        if wrong.any():
            allowed = "{0, 1}" if k == 2 else f"the integers 0 .. {k - 1}"
            raise DataError("labels", f"labels must be in {allowed}", row=int(np.argmax(wrong)))
        if config.task == "binary" and np.unique(arr).size < 2:
            raise DataError("labels", "binary labels need both classes")
    return np.ascontiguousarray(arr)


def _pow2_at_least(x: float) -> float:
    return float(2.0 ** math.ceil(math.log2(x))) if x > 1.0 else 1.0


@dataclass(frozen=True)
class Logistic:
    """Binary logistic loss; the base score is the log-odds of the training labels."""

    prior: float
    n_outputs: int = 1

    @classmethod
    def fit(cls, y: FloatArray) -> Logistic:
        return cls(prior=float(np.clip(y.mean(), PROB_EPS, 1 - PROB_EPS)))

    def base_score(self) -> FloatArray:
        return np.array([math.log(self.prior / (1 - self.prior))])

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        p = expit(raw[:, 0])
        return (p - y)[:, None], (p * (1 - p))[:, None]

    def gradient_bounds(self, g: FloatArray) -> tuple[float, float]:
        return 1.0, 0.25

    def loss(self, y: FloatArray, raw: FloatArray) -> float:
        return metrics.log_loss(y, self.output(raw))

    def output(self, raw: FloatArray) -> FloatArray:
        return np.asarray(expit(raw[:, 0]), dtype=np.float64)

    def metrics(self, y: FloatArray, raw: FloatArray) -> dict[str, float]:
        p = self.output(raw)
        out = {"loss": metrics.log_loss(y, p)}
        if 0 < y.sum() < len(y):
            out["auc"] = metrics.roc_auc(y, p)
        return out

    def params(self) -> dict[str, float]:
        return {"prior": self.prior}


@dataclass(frozen=True)
class Softmax:
    """Softmax cross-entropy; the base scores are the log class frequencies (centred)."""

    priors: tuple[float, ...]

    @property
    def n_outputs(self) -> int:
        return len(self.priors)

    @classmethod
    def fit(cls, y: FloatArray, n_classes: int) -> Softmax:
        counts = np.bincount(y.astype(np.int64), minlength=n_classes) / len(y)
        return cls(priors=tuple(float(c) for c in np.clip(counts, PROB_EPS, 1.0)))

    def base_score(self) -> FloatArray:
        logs = np.log(np.array(self.priors))
        return np.asarray(logs - logs.mean(), dtype=np.float64)

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        p = softmax(raw, axis=1)
        g = p.copy()
        g[np.arange(len(y)), y.astype(np.int64)] -= 1.0
        return g, p * (1 - p)

    def gradient_bounds(self, g: FloatArray) -> tuple[float, float]:
        return 1.0, 0.25

    def loss(self, y: FloatArray, raw: FloatArray) -> float:
        return float(-log_softmax(raw, axis=1)[np.arange(len(y)), y.astype(np.int64)].mean())

    def output(self, raw: FloatArray) -> FloatArray:
        return np.asarray(softmax(raw, axis=1), dtype=np.float64)

    def metrics(self, y: FloatArray, raw: FloatArray) -> dict[str, float]:
        p = self.output(raw)
        return {"loss": self.loss(y, raw), "accuracy": float((p.argmax(axis=1) == y).mean())}

    def params(self) -> dict[str, float]:
        return {f"prior_{k}": p for k, p in enumerate(self.priors)}


@dataclass(frozen=True)
class SquaredError:
    """Squared error on labels standardised with the training ``mean`` and ``scale``."""

    mean: float
    scale: float
    n_outputs: int = 1

    @classmethod
    def fit(cls, y: FloatArray) -> SquaredError:
        scale = float(y.std())
        return cls(mean=float(y.mean()), scale=scale if scale > 0 else 1.0)

    def base_score(self) -> FloatArray:
        return np.zeros(1)

    def grad_hess(self, y: FloatArray, raw: FloatArray) -> tuple[FloatArray, FloatArray]:
        z = (y - self.mean) / self.scale
        return (raw[:, 0] - z)[:, None], np.ones((len(y), 1))

    def gradient_bounds(self, g: FloatArray) -> tuple[float, float]:
        return _pow2_at_least(float(np.abs(g).max(initial=0.0))), 1.0

    def loss(self, y: FloatArray, raw: FloatArray) -> float:
        return float(np.mean((y - self.output(raw)) ** 2))

    def output(self, raw: FloatArray) -> FloatArray:
        return np.asarray(self.mean + self.scale * raw[:, 0], dtype=np.float64)

    def metrics(self, y: FloatArray, raw: FloatArray) -> dict[str, float]:
        mse = self.loss(y, raw)
        return {"loss": mse, "rmse": math.sqrt(mse)}

    def params(self) -> dict[str, float]:
        return {"mean": self.mean, "scale": self.scale}


def fit_objective(config: SecureBoostConfig, y: FloatArray) -> Objective:
    """The objective of ``config.task`` with its constants estimated on the training labels ``y``."""
    if config.task == "binary":
        return Logistic.fit(y)
    if config.task == "multiclass":
        return Softmax.fit(y, config.n_classes)
    return SquaredError.fit(y)


def objective_from_params(task: str, n_classes: int, params: dict[str, float]) -> Objective:
    """Rebuild a stored objective (see :meth:`Objective.params`)."""
    try:
        if task == "binary":
            return Logistic(prior=float(params["prior"]))
        if task == "multiclass":
            return Softmax(priors=tuple(float(params[f"prior_{k}"]) for k in range(n_classes)))
        return SquaredError(mean=float(params["mean"]), scale=float(params["scale"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError("model", f"bad objective parameters: {exc}") from exc
