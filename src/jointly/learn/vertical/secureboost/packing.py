"""Fixed-point gradients packed into slots of one plaintext, and the slot arithmetic that keeps them exact.

Per row ``i`` the guest quantizes ``q[i, 2k] = round(g_k * 2**frac_bits)`` and
``q[i, 2k+1] = round(h_k * 2**frac_bits)`` for every output ``k`` and packs the ``J = 2K`` slots into
one integer ``P_i = sum_j q[i, j] * 2**o_j`` (``o_j`` = sum of the widths before slot ``j``).  Slots
are *signed* (balanced digits): a slot of width ``w`` holds any integer with ``|v| < 2**(w-1)``.
Packing is linear, so a sum of packed values is the packing of the slot sums, as long as no slot
sum leaves its range; the widths are chosen so that a sum over every row of a tree cannot:
``w_j = bitlen(rows * bound_j * 2**frac_bits) + 1``.

Histogram bins (sums of the ``P_i``) are packed again, ``per`` bins to one Paillier plaintext
(``per * W <= bitlen(max_int) - 1``, ``W`` the total width), which keeps every plaintext below
``max_int`` so it decrypts to the exact signed integer.

Why signed slots and not offsets: with ``g + offset >= 0`` the guest would have to subtract
``count * offset`` from each bin, so hosts would have to reveal the number of rows in every
bin of every feature.  Balanced digits need no counts at all; unpacking checks that nothing is
left over, which rejects a malformed histogram.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from jointly.errors import ConfigError, ProtocolViolation

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
ObjArray = NDArray[np.object_]

MAX_SLOT_BITS = 63  #: slot sums must fit in int64
MAX_SLOTS = 2 * 64


@dataclass(frozen=True)
class SlotLayout:
    """Widths (bits) of the ``J = 2 * n_outputs`` slots, ``g`` and ``h`` of each output alternating."""

    widths: tuple[int, ...]

    def __post_init__(self) -> None:
        w = self.widths
        if not 1 <= len(w) <= MAX_SLOTS or len(w) % 2:
            raise ProtocolViolation(f"a slot layout needs an even number (2 .. {MAX_SLOTS}) of slots, got {len(w)}")
        if not all(isinstance(x, int) and not isinstance(x, bool) and 2 <= x <= MAX_SLOT_BITS for x in w):
            raise ProtocolViolation(f"slot widths must be integers from 2 to {MAX_SLOT_BITS}, got {list(w)}")

    @classmethod
    def for_bounds(cls, n_rows: int, bounds: Sequence[tuple[float, float]], frac_bits: int) -> SlotLayout:
        """Widths that hold the sum over ``n_rows`` rows of values with ``|g| <= gb``, ``0 <= h <= hb``."""
        widths: list[int] = []
        for gb, hb in bounds:
            for bound in (gb, hb):
                top = int(np.ceil(bound * 2.0**frac_bits)) * max(n_rows, 1)
                widths.append(top.bit_length() + 1)
        if max(widths) > MAX_SLOT_BITS:
            raise ConfigError(
                f"gradient sums need {max(widths)}-bit slots (over {MAX_SLOT_BITS}): lower frac_bits or the row count"
            )
        return cls(tuple(widths))

    @property
    def n_slots(self) -> int:
        return len(self.widths)

    @property
    def total_bits(self) -> int:
        return sum(self.widths)

    def per_plaintext(self, max_int: int) -> int:
        """How many packed bins fit in one plaintext below ``max_int``; raises ConfigError if none."""
        per = (max_int.bit_length() - 1) // self.total_bits
        if per < 1:
            raise ConfigError(
                f"{self.n_slots} slots of {self.total_bits} bits do not fit one plaintext; "
                "use a larger key, fewer classes or lower frac_bits"
            )
        return per

    def limits(self) -> IntArray:
        return np.array([1 << (w - 1) for w in self.widths], dtype=np.int64)


def quantize(g: FloatArray, h: FloatArray, frac_bits: int) -> IntArray:
    """``(rows, 2K)`` int64 fixed-point values, ``g`` and ``h`` of each output alternating."""
    rows, k = g.shape
    q = np.empty((rows, 2 * k), dtype=np.int64)
    scale = float(2**frac_bits)
    q[:, 0::2] = np.rint(g * scale).astype(np.int64)
    q[:, 1::2] = np.rint(h * scale).astype(np.int64)
    return q


def pack_rows(q: IntArray, layout: SlotLayout) -> ObjArray:
    """One Python int per row: ``sum_j q[:, j] * 2**o_j`` (signed slots, see the module docstring)."""
    if q.shape[1] != layout.n_slots:
        raise ConfigError(f"{q.shape[1]} columns for a layout of {layout.n_slots} slots")
    acc = q[:, -1].astype(object)
    for j in range(layout.n_slots - 2, -1, -1):
        acc = (acc << layout.widths[j]) + q[:, j].astype(object)
    return np.asarray(acc, dtype=object)


def unpack(values: Sequence[int] | ObjArray, layout: SlotLayout, per: int) -> IntArray:
    """Inverse of packing ``per`` bins of ``layout`` per value: ``(len(values) * per, J)`` int64.

    Raises :class:`~jointly.errors.ProtocolViolation` if a value is not a valid packing
    (something left above the last slot): a malformed or tampered histogram.
    """
    rest = np.array([int(v) for v in values], dtype=object)
    out = np.empty((len(rest), per, layout.n_slots), dtype=np.int64)
    for b in range(per):
        for j, w in enumerate(layout.widths):
            half, full = 1 << (w - 1), 1 << w
            low = (rest + half) & (full - 1)  # balanced digit, shifted to [0, 2**w)
            digit = low - half
            out[:, b, j] = digit.astype(np.int64)
            rest = (rest - digit) >> w
    if len(rest) and any(int(v) != 0 for v in rest):
        raise ProtocolViolation("a packed histogram value does not decode: it is not a packing of gradient sums")
    return out.reshape(len(rest) * per, layout.n_slots)
