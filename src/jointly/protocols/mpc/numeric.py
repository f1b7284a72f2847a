"""Division, reciprocal and reciprocal square root of secret-shared values by Newton iteration.

*Normalisation* first, so that Newton starts close: for a positive ``b`` one batched comparison
against every power of two (or of four) from ``2**-frac_bits`` up to ``2**max_log2`` gives the
shared one-hot exponent ``o_j = [2**j <= b < 2**(j+1)]``; ``b * 2**-(j+1)`` selected by ``o_j``
(a product of a shared 0/1 integer with a locally shifted copy: exact, no truncation) lies in
``[1/2, 1)`` (``[1/4, 1)`` for rsqrt).  Then Newton from a linear first guess:
``y <- y (2 - z y)`` (3 steps, relative error below ``2**-28`` before fixed-point rounding)
and ``y <- y (3 - z y**2) / 2`` (4 steps).  The result is scaled back with the same one-hot.

Precision: the absolute error of the result is a few units of ``2**-frac_bits`` times its
magnitude's power of two (relative ``~2**-(frac_bits-2)``); inputs must lie in
``[2**-frac_bits, 2**max_log2)``, where ``max_log2 <= 61 - 2 * frac_bits``.
Division by a *public* integer (:func:`div_public`) is two local-ish truncations.
"""

from __future__ import annotations

import numpy as np

from jointly.crypto.shares import SharedTensor
from jointly.errors import ConfigError
from jointly.protocols.mpc.engine import TwoPartyEngine

_RECIP_STEPS = 3
_RSQRT_STEPS = 4


def _engine(x: SharedTensor) -> TwoPartyEngine:
    eng = x.engine
    if not isinstance(eng, TwoPartyEngine):
        raise TypeError("these functions need a TwoPartyEngine")
    return eng


def _max_log2(x: SharedTensor, max_log2: int | None) -> int:
    top = 61 - 2 * x.frac_bits
    if max_log2 is None:
        return top
    if not 0 < max_log2 <= top:
        raise ConfigError(f"max_log2 must lie in (0, {top}] with {x.frac_bits} fractional bits")
    return max_log2


def _one_hot(b: SharedTensor, exps: np.ndarray) -> SharedTensor:
    """``o[..., j] = [2**exps[j] <= b < 2**exps[j+1]]`` (last: ``b >= 2**exps[-1]``), shared integers."""
    thresholds = np.exp2(exps.astype(np.float64))
    ge = b.reshape((*b.shape, 1)) >= thresholds  # (..., J)
    nxt = SharedTensor.concat([ge[..., 1:], SharedTensor.public(b.engine, np.zeros((*b.shape, 1), np.int64), 0)], -1)
    return ge - nxt


def _scaled(x: SharedTensor, one_hot: SharedTensor, shifts: np.ndarray) -> SharedTensor:
    """``sum_j one_hot[..., j] * x * 2**-shifts[j]`` (element-wise ``x``, shifts public)."""
    eng = _engine(x)
    wide = x.reshape((*x.shape, 1)) * np.ones(len(shifts), dtype=np.int64)  # local broadcast copy
    down = np.maximum(shifts, 0)
    up = np.maximum(-shifts, 0)
    wide = wide * (np.int64(1) << up.astype(np.int64))
    if down.any():
        wide = eng.truncate_by(wide, np.broadcast_to(down, wide.shape))
    return (one_hot * wide).sum(axis=-1)


def reciprocal(b: SharedTensor, *, max_log2: int | None = None) -> SharedTensor:
    """``1 / b`` for a positive shared ``b`` in ``[2**-frac_bits, 2**max_log2)``."""
    top = _max_log2(b, max_log2)
    exps = np.arange(-b.frac_bits, top + 1)
    oh = _one_hot(b, exps)
    z = _scaled(b, oh, exps + 1)  # in [1/2, 1)
    y = 2.9142 - z * 2
    for _ in range(_RECIP_STEPS):
        y = y * (2 - z * y)
    # 1/b = y * 2**-(j+1)
    return _scaled(y, oh, exps + 1)


def divide(a: SharedTensor, b: SharedTensor, *, max_log2: int | None = None) -> SharedTensor:
    """``a / b`` for a positive shared ``b`` (``a`` any sign, same shape or broadcastable)."""
    top = _max_log2(b, max_log2)
    exps = np.arange(-b.frac_bits, top + 1)
    oh = _one_hot(b, exps)
    zb = _scaled(b, oh, exps + 1)
    a_full = a + SharedTensor.public(a.engine, np.zeros(np.broadcast_shapes(a.shape, b.shape)))
    oh_full = (
        oh
        if oh.shape[:-1] == a_full.shape
        else oh + SharedTensor.public(a.engine, np.zeros((*a_full.shape, len(exps)), np.int64), 0)
    )
    za = _scaled(a_full, oh_full, exps + 1)
    y = 2.9142 - zb * 2
    for _ in range(_RECIP_STEPS):
        y = y * (2 - zb * y)
    return za * y


def _rsqrt_normalised(
    b: SharedTensor, max_log2: int | None
) -> tuple[SharedTensor, SharedTensor, SharedTensor, np.ndarray]:
    """``(z, rsqrt(z), one_hot, i)`` with ``z = b / 4**(i+1)`` in ``[1/4, 1)``."""
    top = _max_log2(b, max_log2)
    lo = -(b.frac_bits + 1) // 2
    exps4 = np.arange(lo, top // 2 + 1)  # 4**i thresholds
    oh = _one_hot(b, 2 * exps4)
    z = _scaled(b, oh, 2 * (exps4 + 1))
    y = 2.15 - z * 1.2
    for _ in range(_RSQRT_STEPS):
        y = y * (3 - z * (y * y)) * 0.5
    return z, y, oh, exps4


def rsqrt(b: SharedTensor, *, max_log2: int | None = None) -> SharedTensor:
    """``1 / sqrt(b)`` for a positive shared ``b`` in ``[2**-frac_bits, 2**max_log2)``."""
    _, y, oh, exps4 = _rsqrt_normalised(b, max_log2)
    return _scaled(y, oh, exps4 + 1)  # rsqrt(b) = rsqrt(z) * 2**-(i+1)


def sqrt(b: SharedTensor, *, max_log2: int | None = None) -> SharedTensor:
    """``sqrt(b)`` for a positive shared ``b``: ``z * rsqrt(z) * 2**(i+1)``."""
    z, y, oh, exps4 = _rsqrt_normalised(b, max_log2)
    return _scaled(z * y, oh, -(exps4 + 1))


def div_public(x: SharedTensor, n: int, *, precision_bits: int = 24) -> SharedTensor:
    """``x / n`` for a public positive integer ``n``: truncate by ``floor(log2 n)``, then multiply by
    ``round(2**(precision_bits + t) / n)`` and truncate by ``precision_bits``.

    Needs ``|x / n| < 2**(61 - frac_bits - precision_bits)``; relative error about ``2**-precision_bits``
    plus a unit of ``2**-frac_bits``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n <= 0:
        raise ConfigError(f"div_public needs a positive integer, got {n!r}")
    n = int(n)
    t = n.bit_length() - 1
    eng = _engine(x)
    y = eng.truncate_by(x, np.asarray(t)) if t else x
    m = round(2 ** (precision_bits + t) / n)
    scaled = SharedTensor(eng, y.share * np.uint64(m), y.frac_bits + precision_bits)
    return eng.truncate(scaled, precision_bits)
