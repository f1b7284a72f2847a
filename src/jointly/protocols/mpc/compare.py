"""Functions of secret-shared values built on the sign bit: ReLU, max, argmax, sorting-free quantile.

All of them run on whole arrays; reductions are trees of ``ceil(log2 n)`` levels, each level one
batched comparison (eight rounds, see :mod:`.engine`) plus one round of products.  Nothing is
revealed: comparison results stay shared 0/1 integers and select values by multiplication.
"""

from __future__ import annotations

import math

import numpy as np

from jointly.crypto.shares import SharedTensor
from jointly.errors import ConfigError
from jointly.protocols.mpc.engine import TwoPartyEngine


def relu(x: SharedTensor) -> SharedTensor:
    """``max(x, 0)`` element-wise: ``x * (1 - [x < 0])``."""
    return x * (1 - (x < 0))


def maximum(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Element-wise maximum: ``y + [x > y] (x - y)``."""
    return y + (x > y) * (x - y)


def minimum(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Element-wise minimum."""
    return y + (x < y) * (x - y)


def _engine(x: SharedTensor) -> TwoPartyEngine:
    eng = x.engine
    if not isinstance(eng, TwoPartyEngine):
        raise TypeError("these functions need a TwoPartyEngine")
    return eng


def argmax(x: SharedTensor, *, smallest: bool = False) -> tuple[SharedTensor, SharedTensor]:
    """``(max, index of the max)`` over axis 0 (``smallest``: min and argmin), both shared.

    Ties go to the lower index.  ``index`` is a shared integer (``frac_bits`` 0).
    """
    if len(x) == 0:
        raise ConfigError("argmax of an empty array")
    eng = _engine(x)
    idx_shape = (len(x), *x.shape[1:])
    index = SharedTensor.public(
        eng, np.broadcast_to(np.arange(len(x)).reshape((-1,) + (1,) * (x.ndim - 1)), idx_shape), 0
    )
    values = x
    while len(values) > 1:
        half = len(values) // 2
        a, b = values[:half], values[half : 2 * half]
        ia, ib = index[:half], index[half : 2 * half]
        # take a when a wins: a > b for max (a < b for min), ties keep the lower index (a)
        keep_b = (b < a) if smallest else (b > a)
        (va, vi) = eng.mul_many([(keep_b, b - a), (keep_b, ib - ia)])
        new_v, new_i = a + va, ia + vi
        if len(values) % 2:
            new_v = SharedTensor.concat([new_v, values[2 * half :]])
            new_i = SharedTensor.concat([new_i, index[2 * half :]])
        values, index = new_v, new_i
    return values[0], index[0]


def max_(x: SharedTensor) -> SharedTensor:
    """Maximum over axis 0."""
    return argmax(x)[0]


def min_(x: SharedTensor) -> SharedTensor:
    """Minimum over axis 0."""
    return argmax(x, smallest=True)[0]


def count_less(x: SharedTensor, thresholds: SharedTensor) -> SharedTensor:
    """For each threshold ``t`` (shape ``(m,)``), the shared count of ``x < t`` over a 1-d ``x``."""
    diff = x.reshape(1, -1) - thresholds.reshape(-1, 1)  # (m, n): x - t
    return (diff < 0).sum(axis=1)


def quantile(x: SharedTensor, q: float, *, iterations: int = 24) -> SharedTensor:
    """The ``q``-quantile of a 1-d shared ``x`` without sorting (``inverted_cdf`` definition).

    Bisection between the shared minimum and maximum: each step counts ``#{x <= mid}`` with one
    batched comparison of all elements against the shared ``mid`` and keeps the half where
    the count first reaches ``ceil(q n)``.  After ``iterations`` steps the returned ``hi`` lies in
    ``[v, v + (max - min) / 2**iterations]`` (plus fixed-point error) for the true quantile ``v``
    (the smallest element with ``#{x <= v} >= q n``).  Nothing is revealed.
    """
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"q must lie in [0, 1], got {q}")
    n = len(x)
    if n == 0:
        raise ConfigError("quantile of an empty array")
    eng = _engine(x)
    lo_v, _ = argmax(x, smallest=True)
    hi = max_(x)
    if q == 0.0:
        return lo_v
    k = max(1, math.ceil(q * n))
    lo = lo_v - 2.0 ** (-x.frac_bits) * 4  # #{x <= lo} = 0 < k
    for _ in range(iterations):
        mid = (lo + hi) * 0.5
        # #{x <= mid} = n - #{mid < x}
        above = (x.reshape(-1) > mid).sum()
        cnt = n - above
        go_up = cnt < k  # the quantile is above mid
        up_lo, up_hi = eng.mul_many([(go_up, mid - lo), (go_up, hi - mid)])
        lo, hi = lo + up_lo, mid + up_hi
    return hi
