"""Split gains and leaf weights (XGBoost's formulas), computed by the guest on exact integer sums.

Every split search -- the guest's own features, each host's decrypted histograms, and the
plaintext reference -- calls the same functions on the same integer sums, so all of them get
bit-identical gains and break ties the same way: the first candidate with the largest gain, in
the order "guest features, then hosts in job order; within a party feature by feature, bin by
bin".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from jointly.learn.vertical.secureboost.config import SecureBoostConfig

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BestSplit:
    """The best candidate of one party for one node: its gain, position and left-child sums."""

    gain: float
    index: int
    left: IntArray  # (J,) int64 sums of the left child


def _term(g: FloatArray, h: FloatArray, l2: float) -> FloatArray:
    return np.asarray(g * g / (h + l2), dtype=np.float64)


def _scaled(sums: IntArray, frac_bits: int) -> tuple[FloatArray, FloatArray]:
    scale = float(2**frac_bits)
    f = sums.astype(np.float64) / scale
    return f[..., 0::2], f[..., 1::2]


def split_gains(left: IntArray, total: IntArray, config: SecureBoostConfig) -> FloatArray:
    """Gain of every candidate (rows of ``left``, the left child's sums); ``-inf`` if not allowed.

    A candidate is not allowed when a child's hessian sum (summed over outputs) is below
    ``min_child_weight`` or a child's ``H + l2`` is not positive.
    """
    if left.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    right = total[None, :] - left
    gl, hl = _scaled(left, config.frac_bits)
    gr, hr = _scaled(right, config.frac_bits)
    gt, ht = _scaled(total[None, :], config.frac_bits)
    l2 = config.l2
    acc = np.zeros(left.shape[0], dtype=np.float64)
    ok = np.ones(left.shape[0], dtype=bool)
    for k in range(gl.shape[1]):  # explicit order: identical float results for any number of candidates
        ok &= (hl[:, k] + l2 > 0) & (hr[:, k] + l2 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = acc + (_term(gl[:, k], hl[:, k], l2) + _term(gr[:, k], hr[:, k], l2) - _term(gt[:, k], ht[:, k], l2))
    wl = hl[:, 0].copy()
    wr = hr[:, 0].copy()
    for k in range(1, hl.shape[1]):
        wl = wl + hl[:, k]
        wr = wr + hr[:, k]
    ok &= (wl >= config.min_child_weight) & (wr >= config.min_child_weight)
    return np.where(ok, 0.5 * acc, -np.inf)


def best_split(left: IntArray, total: IntArray, config: SecureBoostConfig) -> BestSplit | None:
    """The first candidate with the largest gain, or None when no candidate is allowed."""
    gains = split_gains(left, total, config)
    if gains.size == 0:
        return None
    i = int(np.argmax(gains))
    if not np.isfinite(gains[i]):
        return None
    return BestSplit(gain=float(gains[i]), index=i, left=left[i].copy())


def node_weight(total: IntArray, frac_bits: int) -> float:
    """The hessian sum of a node, summed over outputs (compared with ``min_child_weight``)."""
    _g, h = _scaled(total, frac_bits)
    acc = 0.0
    for v in h.tolist():
        acc += v
    return acc


def leaf_values(total: IntArray, config: SecureBoostConfig) -> FloatArray:
    """``-learning_rate * G / (H + l2)`` per output (0 where ``H + l2`` is not positive)."""
    g, h = _scaled(total, config.frac_bits)
    den = h + config.l2
    safe = np.where(den > 0, den, 1.0)
    return np.asarray(np.where(den > 0, -config.learning_rate * g / safe, 0.0), dtype=np.float64)
