"""Fixed-point encoding of reals as signed integers, and slot packing of small integers.

One encoder serves Paillier, secret sharing and any later scheme: a real ``x``
is represented by the integer ``round(x * 2**frac_bits)``; decoding divides by
``2**frac_bits`` with correct rounding to float64.  The absolute encoding error
is at most ``2**-(frac_bits + 1)``.

Slot packing puts several non-negative integers below ``2**slot_bits`` into one
big integer, column ``j`` at bits ``[j * slot_bits, (j + 1) * slot_bits)``, so
one ciphertext (one decryption, one wire element) can carry many values.

Value code only: no I/O, nothing secret is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["DEFAULT_FRAC_BITS", "FixedPoint", "as_int_array", "pack_slots", "unpack_slots"]

DEFAULT_FRAC_BITS = 40  #: fractional bits of the default fixed-point encoding
_INT64_SAFE = float(2**62)  # below this a float64 rounds to int64 without overflow


def _as_array(x: ArrayLike) -> np.ndarray:
    arr = x if isinstance(x, np.ndarray) else np.asarray(x, dtype=object if _has_big_int(x) else None)
    if arr.dtype.kind not in "biufO":
        raise TypeError(f"cannot encode values of dtype {arr.dtype}")
    return arr


def _has_big_int(x: object) -> bool:
    if isinstance(x, int) and not isinstance(x, bool):
        return not -(2**63) <= x < 2**63
    if isinstance(x, list | tuple):
        return any(_has_big_int(v) for v in x)
    return False


def as_int_array(values: ArrayLike) -> np.ndarray:
    """``values`` as a 1-d object array of Python ints; raises ``TypeError`` for non-integers.

    Accepts numpy integer/bool arrays, object arrays of ints (including ``gmpy2.mpz``) and
    sequences of ints.  Floats are refused, even integral ones: use :class:`FixedPoint`.
    """
    arr = _as_array(values)
    if arr.dtype.kind in "biu":
        out = np.empty(arr.shape, dtype=object)
        out.reshape(-1)[:] = arr.astype(np.int64 if arr.dtype.kind != "u" else np.uint64).reshape(-1).tolist()
        return out
    if arr.dtype.kind == "f":
        raise TypeError("expected integers, got floats (encode them with FixedPoint first)")
    out = np.empty(arr.shape, dtype=object)
    flat = arr.reshape(-1)
    res = out.reshape(-1)
    for i, v in enumerate(flat):
        if isinstance(v, bool) or not (isinstance(v, int | np.integer) or type(v).__name__ == "mpz"):
            raise TypeError(f"expected integers, got {type(v).__name__} at position {i}")
        res[i] = int(v)
    return out


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed-point encoding with ``frac_bits`` fractional bits.

    >>> fp = FixedPoint(frac_bits=8)
    >>> fp.encode([1.5, -0.25]).tolist()
    [384, -64]
    >>> fp.decode(fp.encode([1.5, -0.25])).tolist()
    [1.5, -0.25]
    """

    frac_bits: int = DEFAULT_FRAC_BITS

    def __post_init__(self) -> None:
        if isinstance(self.frac_bits, bool) or not isinstance(self.frac_bits, int) or not 0 <= self.frac_bits <= 900:
            raise ValueError(f"frac_bits must be an integer in [0, 900], got {self.frac_bits!r}")

    def encode(self, x: ArrayLike) -> np.ndarray:
        """``round(x * 2**frac_bits)`` as an object array of Python ints (same shape as ``x``).

        Integer inputs are encoded exactly (shifted left); floats are rounded half to
        even.  NaN and infinities raise ``ValueError``.
        """
        arr = _as_array(x)
        f = self.frac_bits
        if arr.dtype.kind in "biu" or (arr.dtype == object and _all_ints(arr)):
            ints = as_int_array(arr)
            if f:
                flat = ints.reshape(-1)
                for i, v in enumerate(flat):
                    flat[i] = v << f
            return ints
        vals = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(vals).all():
            raise ValueError("cannot encode NaN or infinite values")
        scaled = np.ldexp(vals, f)
        rounded = np.rint(scaled)
        out = np.empty(vals.shape, dtype=object)
        if rounded.size == 0 or float(np.abs(rounded).max()) < _INT64_SAFE:
            out.reshape(-1)[:] = rounded.astype(np.int64).reshape(-1).tolist()
        else:
            out.reshape(-1)[:] = [int(v) for v in rounded.reshape(-1).tolist()]
        return out

    def decode(self, v: ArrayLike, *, frac_bits: int | None = None) -> np.ndarray:
        """The float64 nearest to ``v / 2**frac_bits`` for each integer of ``v``.

        ``frac_bits`` overrides the encoder's own (for values that went through
        multiplications, whose fractional bits add up).
        """
        f = self.frac_bits if frac_bits is None else frac_bits
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ValueError(f"frac_bits must be a non-negative integer, got {f!r}")
        arr = _as_array(v)
        if arr.dtype.kind in "biu":
            return np.ldexp(arr.astype(np.float64), -f)
        if arr.dtype.kind == "f":
            raise TypeError("decode expects integers, got floats")
        ints = as_int_array(arr)
        flat = ints.reshape(-1).tolist()
        if all(-(2**53) <= x <= 2**53 for x in flat):  # exact in float64: scale by a power of two
            return np.ldexp(np.asarray(flat, dtype=np.float64), -f).reshape(ints.shape)
        denom = 1 << f
        return np.asarray([x / denom for x in flat], dtype=np.float64).reshape(ints.shape)


def _all_ints(arr: np.ndarray) -> bool:
    return all(
        (isinstance(v, int | np.integer) or type(v).__name__ == "mpz") and not isinstance(v, bool)
        for v in arr.reshape(-1)
    )


def pack_slots(columns: Sequence[ArrayLike], slot_bits: int) -> np.ndarray:
    """Pack equally long columns of non-negative ints ``< 2**slot_bits``: ``sum_j col_j << (j * slot_bits)``.

    Returns an object array of Python ints; raises ``ValueError`` for values out of range
    or columns of different lengths.
    """
    if isinstance(slot_bits, bool) or not isinstance(slot_bits, int) or slot_bits < 1:
        raise ValueError(f"slot_bits must be a positive integer, got {slot_bits!r}")
    if len(columns) == 0:
        raise ValueError("pack_slots needs at least one column")
    cols = [as_int_array(c).reshape(-1) for c in columns]
    size = len(cols[0])
    if any(len(c) != size for c in cols):
        raise ValueError("all columns must have the same length")
    limit = 1 << slot_bits
    for j, c in enumerate(cols):
        if size and (min(c) < 0 or max(c) >= limit):
            raise ValueError(f"column {j} has values outside [0, 2**{slot_bits})")
    out = np.empty(size, dtype=object)
    shifts = [j * slot_bits for j in range(len(cols))]
    for i in range(size):
        acc = 0
        for c, s in zip(cols, shifts, strict=True):
            acc |= int(c[i]) << s
        out[i] = acc
    return out


def unpack_slots(packed: ArrayLike, slot_bits: int, count: int) -> list[np.ndarray]:
    """Inverse of :func:`pack_slots`: ``count`` object arrays of the slots of each packed int.

    Values must be non-negative; bits above ``count * slot_bits`` raise ``ValueError``
    (they mean a slot overflowed or the wrong ``count`` was given).
    """
    if isinstance(slot_bits, bool) or not isinstance(slot_bits, int) or slot_bits < 1:
        raise ValueError(f"slot_bits must be a positive integer, got {slot_bits!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    vals = as_int_array(packed).reshape(-1).tolist()
    mask = (1 << slot_bits) - 1
    top = count * slot_bits
    cols = [np.empty(len(vals), dtype=object) for _ in range(count)]
    for i, v in enumerate(vals):
        if v < 0 or v >> top:
            raise ValueError(f"packed value at position {i} does not fit {count} slots of {slot_bits} bits")
        for j in range(count):
            cols[j][i] = (v >> (j * slot_bits)) & mask
    return cols
