"""Evaluation metrics for joint models, as plain numpy functions.

Binary classification takes labels in ``{0, 1}`` and scores (probabilities or any
monotone score; only :func:`accuracy` and :func:`log_loss` need probabilities).
Ties in the scores are handled exactly as scikit-learn does: a tie between a
positive and a negative counts one half in :func:`roc_auc`, and :func:`roc_curve`
emits one point per distinct score.  The top-k metrics break ties at the cut-off
by expectation: when the k% boundary falls inside a group of equal scores, the
group contributes in proportion to how much of it fits (what a random tie-break
would give on average), so the result never depends on row order.

:func:`evaluate` returns the standard set of a task as ``{name: float}`` and
:func:`compare` turns two such sets (joint model vs. a party's own baseline)
into gains, positive when the joint model is better.

All functions only compute; invalid inputs raise :class:`ValueError` with the reason.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Task = Literal["binary", "multiclass", "regression"]
FloatArray = NDArray[np.float64]

#: metrics where a smaller value is better; every other metric is better when larger
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
LOG_LOSS_EPS = 1e-15


# -- input checks ------------------------------------------------------------------
def _scores(values: ArrayLike, name: str = "scores") -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _binary(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.bool_], FloatArray]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}")
    s = _scores(scores)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.shape[0]} rows but scores has {s.shape[0]}")
    try:
        yf = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("binary labels must be 0 or 1") from exc
    if not np.all((yf == 0) | (yf == 1)):
        raise ValueError("binary labels must be 0 or 1")
    return yf == 1, s


def _both_classes(pos: NDArray[np.bool_], metric: str) -> tuple[int, int]:
    n_pos = int(pos.sum())
    n_neg = int(pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"{metric} is undefined when y_true holds only one class")
    return n_pos, n_neg


def _check_fraction(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"top fraction k must be in (0, 1], got {k}")


# -- binary classification -----------------------------------------------------------
def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ROC points ``(fpr, tpr, thresholds)``, one per distinct score, highest threshold first.

    The first point is ``(0, 0)`` at threshold ``+inf``; the same points as
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    pos, s = _binary(y_true, scores)
    n_pos, n_neg = _both_classes(pos, "ROC curve")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    pos_sorted = pos[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(pos_sorted)[last_of_group].astype(np.float64)
    fps = (last_of_group + 1).astype(np.float64) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last_of_group]]
    return fpr, tpr, thresholds


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting one half."""
    pos, s = _binary(y_true, scores)
    n_pos, n_neg = _both_classes(pos, "AUC")
    ranks = _average_ranks(s)
    rank_sum = float(ranks[pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _average_ranks(s: FloatArray) -> FloatArray:
    """1-based ranks, tied values sharing the mean of their ranks (Mann-Whitney U)."""
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    ends = np.r_[starts[1:], s_sorted.size]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty_like(s)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def ks(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the score CDFs of positives and negatives.

    Equal to ``max |TPR - FPR|`` over all thresholds, and to the two-sample
    ``scipy.stats.ks_2samp(scores[y == 1], scores[y == 0]).statistic``.
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.max(np.abs(tpr - fpr)))


def accuracy(y_true: ArrayLike, scores: ArrayLike, *, threshold: float = 0.5) -> float:
    """Share of rows whose predicted class (1 when score > threshold) equals the label."""
    pos, s = _binary(y_true, scores)
    return float(np.mean((s > threshold) == pos))


def log_loss(y_true: ArrayLike, probs: ArrayLike, *, eps: float = LOG_LOSS_EPS) -> float:
    """Mean binary cross-entropy, probabilities clipped to ``[eps, 1 - eps]``."""
    pos, p = _binary(y_true, probs)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("log_loss needs probabilities in [0, 1]")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(pos, np.log(p), np.log1p(-p))))


def precision_at_top(y_true: ArrayLike, scores: ArrayLike, k: float) -> float:
    """Share of positives among the ``ceil(k * n)`` highest-scored rows (ties at the cut-off by expectation)."""
    pos, s = _binary(y_true, scores)
    _check_fraction(k)
    top = max(1, math.ceil(k * s.size - 1e-9))
    return _positives_in_top(pos, s, top) / top


def lift_at_top(y_true: ArrayLike, scores: ArrayLike, k: float) -> float:
    """Precision among the top ``k`` fraction divided by the overall positive rate."""
    pos, _ = _binary(y_true, scores)
    base = float(pos.mean())
    if base == 0.0:
        raise ValueError("lift is undefined when y_true has no positives")
    return precision_at_top(y_true, scores, k) / base


def _positives_in_top(pos: NDArray[np.bool_], s: FloatArray, top: int) -> float:
    order = np.argsort(-s, kind="mergesort")
    s_sorted, pos_sorted = s[order], pos[order]
    cut = s_sorted[top - 1]
    above = s_sorted > cut
    tied = s_sorted == cut
    n_above = int(above.sum())
    share = (top - n_above) / int(tied.sum())
    return float(pos_sorted[above].sum()) + share * float(pos_sorted[tied].sum())


# -- multiclass -----------------------------------------------------------------------
def _multiclass(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int64], FloatArray]:
    y = np.asarray(y_true)
    p = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 2:
        raise ValueError(f"multiclass needs labels (n,) and scores (n, classes), got {y.shape} and {p.shape}")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} rows but scores has {p.shape[0]}")
    if y.size == 0 or p.shape[1] < 2:
        raise ValueError("multiclass needs rows and at least two score columns")
    if not np.all(np.isfinite(p)):
        raise ValueError("scores contains NaN or infinite values")
    yi = y.astype(np.int64)
    if not np.array_equal(yi, y) or yi.min() < 0 or yi.max() >= p.shape[1]:
        raise ValueError(f"multiclass labels must be integers in [0, {p.shape[1]})")
    return yi, p


def multiclass_accuracy(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Share of rows whose highest-scored class (first on ties) is the label; scores are (n, classes)."""
    y, p = _multiclass(y_true, scores)
    return float(np.mean(np.argmax(p, axis=1) == y))


def macro_ovr_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Mean over classes of the one-vs-rest AUC of that class's score column.

    Equal to ``roc_auc_score(y, scores, multi_class="ovr", average="macro")`` when
    every class occurs (scikit-learn also expects rows of probabilities summing to 1;
    this function does not need that).
    """
    y, p = _multiclass(y_true, scores)
    present = np.unique(y)
    if present.size != p.shape[1]:
        missing = sorted(set(range(p.shape[1])) - set(present.tolist()))
        raise ValueError(f"one-vs-rest AUC needs every class in y_true; missing {missing}")
    return float(np.mean([roc_auc(y == c, p[:, c]) for c in range(p.shape[1])]))


def multiclass_log_loss(y_true: ArrayLike, probs: ArrayLike, *, eps: float = LOG_LOSS_EPS) -> float:
    """Mean cross-entropy of (n, classes) probabilities, clipped to ``[eps, 1 - eps]``."""
    y, p = _multiclass(y_true, probs)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("log_loss needs probabilities in [0, 1]")
    picked = np.clip(p[np.arange(y.size), y], eps, 1.0 - eps)
    return float(-np.mean(np.log(picked)))


# -- regression -------------------------------------------------------------------------
def _regression(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = _scores(y_true, "y_true")
    p = _scores(y_pred, "y_pred")
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.shape[0]} rows but y_pred has {p.shape[0]}")
    return y, p


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    y, p = _regression(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    y, p = _regression(y_true, y_pred)
    return float(np.mean(np.abs(y - p)))


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (as scikit-learn: 1.0 or 0.0 when y is constant)."""
    y, p = _regression(y_true, y_pred)
    ss_res = float(np.sum((y - p) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


# -- standard sets ---------------------------------------------------------------------
def evaluate(task: Task | str, y_true: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """The standard metrics of ``task``.

    * ``"binary"`` (scores = probability of class 1): auc, ks, accuracy, log_loss,
      precision_top5, lift_top5, precision_top10, lift_top10;
    * ``"multiclass"`` (scores = (n, classes) probabilities): accuracy, auc (macro one-vs-rest), log_loss;
    * ``"regression"`` (scores = predictions): rmse, mae, r2.
    """
    if task == "binary":
        return {
            "auc": roc_auc(y_true, scores),
            "ks": ks(y_true, scores),
            "accuracy": accuracy(y_true, scores),
            "log_loss": log_loss(y_true, scores),
            "precision_top5": precision_at_top(y_true, scores, 0.05),
            "lift_top5": lift_at_top(y_true, scores, 0.05),
            "precision_top10": precision_at_top(y_true, scores, 0.10),
            "lift_top10": lift_at_top(y_true, scores, 0.10),
        }
    if task == "multiclass":
        return {
            "accuracy": multiclass_accuracy(y_true, scores),
            "auc": macro_ovr_auc(y_true, scores),
            "log_loss": multiclass_log_loss(y_true, scores),
        }
    if task == "regression":
        return {"rmse": rmse(y_true, scores), "mae": mae(y_true, scores), "r2": r2(y_true, scores)}
    raise ValueError(f"unknown task {task!r}; expected 'binary', 'multiclass' or 'regression'")


def compare(joint: dict[str, float], baseline: dict[str, float]) -> dict[str, dict[str, float]]:
    """Gains of the joint model over a baseline, for every metric both sets hold.

    ``{metric: {"joint", "baseline", "gain", "relative_gain"}}``: ``gain`` is
    oriented so that positive means the joint model is better (``baseline - joint``
    for log_loss, rmse and mae, ``joint - baseline`` otherwise); ``relative_gain``
    is ``gain / |baseline|`` (NaN when the baseline is 0).
    """
    out: dict[str, dict[str, float]] = {}
    for name, value in joint.items():
        if name not in baseline:
            continue
        j, b = float(value), float(baseline[name])
        gain = b - j if name in LOWER_IS_BETTER else j - b
        relative = gain / abs(b) if b != 0.0 else math.nan
        out[name] = {"joint": j, "baseline": b, "gain": gain, "relative_gain": relative}
    return out
