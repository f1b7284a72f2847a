"""Vectors of Paillier ciphertexts: :class:`EncryptedVector` and its wire form :class:`WireCiphertexts`.

Import them from :mod:`jointly.crypto.paillier`; this module only keeps that one
a readable size.  A vector stores its ciphertexts as ``gmpy2.mpz`` integers, as
fixed-width byte rows plus a gather index (what arrives from the wire and what
worker processes receive), or both; each form is made from the other on first
need and kept, vectors being immutable values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
from numpy.typing import ArrayLike

from jointly.channel.codec import message
from jointly.crypto import _paillier_engine as eng
from jointly.crypto import _paillier_pool as runner
from jointly.crypto.encoding import DEFAULT_FRAC_BITS, FixedPoint, as_int_array
from jointly.errors import KeyMismatch, ProtocolViolation

if TYPE_CHECKING:
    from jointly.crypto.paillier import PaillierPublicKey

__all__ = ["EncryptedVector", "WireCiphertexts"]

_mpz = gmpy2.mpz
_MPZ_TYPE = type(_mpz(0))
_ONE = _mpz(1)


def _objarray(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# -- wire form of ciphertexts -------------------------------------------------------------------
@message("paillier.ciphertexts")
@dataclass(frozen=True)
class WireCiphertexts:
    """Ciphertexts on the wire: fixed-width big-endian ``2 * bits / 8`` bytes each, concatenated.

    ``fingerprint`` names the key (sha256 of ``n``); ``frac_bits`` is the fixed-point scale.
    """

    fingerprint: bytes
    frac_bits: int
    count: int
    data: bytes


# -- ciphertext vectors -------------------------------------------------------------------------
def _is_int_scalar(x: object) -> bool:
    return isinstance(x, int | np.integer | _MPZ_TYPE) and not isinstance(x, bool | np.bool_)


def _int_matrix(mat: np.ndarray) -> tuple[np.ndarray, bool]:
    """``mat`` as int64 if every value fits (``True``), else as an object array of ints (``False``)."""
    if mat.dtype.kind in "bi" or (mat.dtype.kind == "u" and (mat.size == 0 or int(mat.max()) < 2**63)):
        return mat.astype(np.int64), True
    ints = as_int_array(mat)
    if all(-(2**63) < v < 2**63 for v in ints.reshape(-1).tolist()):
        return ints.astype(np.int64), True
    return ints, False


class EncryptedVector:
    """A 1-d vector of Paillier ciphertexts under one key, with its fixed-point ``frac_bits``.

    Operators work elementwise and read like the plaintext maths; plaintext operands
    (ints, floats, numpy arrays) are encoded on the fly.  ``bool(v)`` raises, so no
    code can branch on an encrypted value.  Vectors are immutable values.
    """

    __slots__ = ("_cs", "_idx", "_rows", "frac_bits", "public_key")
    __array_ufunc__ = None  # make ``ndarray + ev`` call our __radd__ instead of iterating

    def __init__(self, public_key: PaillierPublicKey, ciphertexts: np.ndarray, frac_bits: int) -> None:
        self.public_key = public_key
        self._cs: np.ndarray | None = ciphertexts  # object array of gmpy2.mpz
        self._rows: np.ndarray | None = None  # the same as (n, width) uint8 big-endian rows
        self._idx: np.ndarray | None = None  # vector i is _rows[_idx[i]] (None: identity)
        self.frac_bits = int(frac_bits)

    @classmethod
    def _from_rows(
        cls, public_key: PaillierPublicKey, rows: np.ndarray, idx: np.ndarray | None, frac_bits: int
    ) -> EncryptedVector:
        ev = cls.__new__(cls)
        ev.public_key = public_key
        ev._cs = None
        ev._rows = rows
        ev._idx = idx
        ev.frac_bits = int(frac_bits)
        return ev

    # -- storage -------------------------------------------------------------------------------
    @property
    def _c(self) -> np.ndarray:
        """The ciphertexts as an object array of ``gmpy2.mpz`` (decoded from bytes on first use)."""
        if self._cs is None:
            rows, idx = self._rows, self._idx
            if rows is None:  # pragma: no cover - one of the two forms always exists
                raise RuntimeError("empty ciphertext storage")
            if idx is None:
                self._cs = _objarray(eng.from_rows(rows))
            elif len(idx) > len(rows) // 2:
                self._cs = _objarray(eng.from_rows(rows)).take(idx)
            else:
                self._cs = _objarray(eng.from_rows(rows[idx]))
        return self._cs

    def _cipher_list(self) -> list[Any]:
        return self._c.tolist()  # type: ignore[no-any-return]

    def _cipher_rows(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The ciphertexts as byte rows plus gather index (encoded from integers on first use)."""
        if self._rows is None:
            self._rows = eng.to_rows(self._cipher_list(), self.public_key.ciphertext_bytes)
            self._idx = None
        return self._rows, self._idx

    # -- container protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        if self._cs is not None:
            return len(self._cs)
        if self._idx is not None:
            return len(self._idx)
        return len(self._rows) if self._rows is not None else 0

    def __bool__(self) -> bool:
        raise TypeError("an encrypted value has no truth value (that would leak it)")

    def __repr__(self) -> str:
        return f"EncryptedVector(len={len(self)}, frac_bits={self.frac_bits}, key={self.public_key!r})"

    def __iter__(self) -> Any:
        raise TypeError("iterate over indices and use ev[i] (an EncryptedVector) instead")

    def _new(self, cts: Sequence[Any] | np.ndarray, frac_bits: int | None = None) -> EncryptedVector:
        arr = cts if isinstance(cts, np.ndarray) else _objarray(cts)
        return EncryptedVector(self.public_key, arr, self.frac_bits if frac_bits is None else frac_bits)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> EncryptedVector:
        size = len(self)
        if _is_int_scalar(index):
            i = int(index)  # type: ignore[arg-type]
            if not -size <= i < size:
                raise IndexError(f"index {i} out of range for a vector of {size}")
            return self.take(np.array([i % size], dtype=np.int64))
        if isinstance(index, slice):
            return self.take(np.arange(size, dtype=np.int64)[index])
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (size,):
                raise IndexError(f"boolean mask of shape {idx.shape} for a vector of {size}")
            return self.take(np.flatnonzero(idx))
        return self.take(idx)

    def take(self, indices: ArrayLike) -> EncryptedVector:
        """The ciphertexts at ``indices`` (ints, negative allowed), in that order."""
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise IndexError(f"indices must be integers, got {idx.dtype}")
        idx = idx.reshape(-1).astype(np.int64, copy=False)
        size = len(self)
        if idx.size and (int(idx.min()) < -size or int(idx.max()) >= size):
            raise IndexError(f"index out of range for a vector of {size}")
        idx = np.where(idx < 0, idx + size, idx)
        if self._rows is None and len(idx) > size and runner.workers() > 1:
            self._cipher_rows()  # a gather that repeats rows: workers then get each row once, not the copies
        out = EncryptedVector.__new__(EncryptedVector)
        out.public_key = self.public_key
        out.frac_bits = self.frac_bits
        out._cs = self._cs.take(idx) if self._cs is not None else None
        if self._rows is not None:
            out._rows = self._rows
            out._idx = idx if self._idx is None else self._idx.take(idx)
        else:
            out._rows = out._idx = None
        return out

    @classmethod
    def concat(cls, parts: Sequence[EncryptedVector]) -> EncryptedVector:
        """One vector of all ``parts`` in order (same key; ``frac_bits`` aligned to the largest)."""
        if not parts:
            raise ValueError("concat needs at least one vector")
        first = parts[0]
        for part in parts:
            first._check_same_key(part)
        f = max(p.frac_bits for p in parts)
        if all(p.frac_bits == f and p._cs is None for p in parts):  # keep wire bytes as bytes
            blocks = []
            for p in parts:
                rows, idx = p._cipher_rows()
                blocks.append(rows if idx is None else rows[idx])
            return cls._from_rows(first.public_key, np.concatenate(blocks), None, f)
        return EncryptedVector(first.public_key, np.concatenate([p._scaled_to(f) for p in parts]), f)

    # -- helpers -------------------------------------------------------------------------------
    def _check_same_key(self, other: EncryptedVector) -> None:
        if not isinstance(other, EncryptedVector):
            raise TypeError(f"expected an EncryptedVector, got {type(other).__name__}")
        if other.public_key != self.public_key:
            raise KeyMismatch("cannot combine vectors encrypted under different Paillier keys")

    def _scaled_to(self, frac_bits: int) -> np.ndarray:
        """Ciphertexts of ``m * 2**(frac_bits - self.frac_bits)``."""
        shift = frac_bits - self.frac_bits
        if shift == 0:
            return self._c
        return self._scalar_pow(1 << shift)._c

    def _plain_operand(self, other: object) -> tuple[np.ndarray, bool]:
        """``other`` broadcast to ``len(self)`` as an array; whether it holds floats."""
        arr = np.asarray(other) if not isinstance(other, np.ndarray) else other
        if arr.ndim == 0:
            arr = np.full(len(self), other, dtype=object if arr.dtype == object else arr.dtype)
        if arr.ndim != 1 or len(arr) != len(self):
            raise ValueError(f"operand of shape {arr.shape} does not match a vector of {len(self)}")
        if arr.dtype.kind == "f":
            return arr, True
        if arr.dtype.kind in "biu":
            return arr, False
        if arr.dtype == object:
            if all(_is_int_scalar(v) for v in arr):
                return arr, False
            return arr.astype(np.float64), True
        raise TypeError(f"cannot combine an EncryptedVector with values of dtype {arr.dtype}")

    def _units(self, per_element: float) -> float:
        return len(self) * per_element

    def _workers_for(self, per_element: float) -> int:
        return runner.parallel_workers(self._units(per_element), self.public_key.bits)

    def _map_chunks(self, fn: Any, extra: Any, bounds: Sequence[tuple[int, int]], n_workers: int) -> Iterator[bytes]:
        """Results of ``fn(n2, blob, width, idx, *extra(lo, hi))`` per chunk, computed in the pool, in order."""
        pk = self.public_key
        n2b = pk.nsquare.to_bytes(pk.ciphertext_bytes, "big")
        width = pk.ciphertext_bytes
        jobs = ((n2b, blob, width, idx, *extra(lo, hi)) for lo, hi, blob, idx in runner.operand_chunks(self, bounds))
        return runner.run_chunks(n_workers, fn, jobs)

    def _map_rows(
        self, fn: Any, extra: Any, bounds: Sequence[tuple[int, int]], n_workers: int, out_rows: int | None = None
    ) -> np.ndarray:
        """Like :meth:`_map_chunks`, joined into ``(rows, width)`` bytes; with ``out_rows`` written in place."""
        width = self.public_key.ciphertext_bytes
        chunks = self._map_chunks(fn, extra, bounds, n_workers)
        if out_rows is None:
            return np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(-1, width)
        out = np.empty((out_rows, width), dtype=np.uint8)
        at = 0
        for data in chunks:
            part = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
            out[at : at + len(part)] = part
            at += len(part)
        if at != out_rows:  # pragma: no cover - a kernel returned the wrong number of rows
            raise RuntimeError(f"worker results hold {at} rows, expected {out_rows}")
        return out

    def _scalar_pow(self, k: int) -> EncryptedVector:
        units = 1.2 * max(abs(k).bit_length(), 1) + 4 * (k < 0)
        n_workers = self._workers_for(units)
        if n_workers == 1:
            return self._new(eng.powmod_scalar(self.public_key._n2, self._cipher_list(), k))
        bounds = runner.chunk_bounds(
            len(self), n_workers, max_chunk=runner.max_chunk_rows(self.public_key.ciphertext_bytes)
        )
        rows = self._map_rows(eng.w_powmod_scalar, lambda lo, hi: (k,), bounds, n_workers, len(self))
        return EncryptedVector._from_rows(self.public_key, rows, None, self.frac_bits)

    # -- addition ------------------------------------------------------------------------------
    def __add__(self, other: object) -> EncryptedVector:
        pk = self.public_key
        if isinstance(other, EncryptedVector):
            self._check_same_key(other)
            if len(other) != len(self):
                raise ValueError(f"cannot add vectors of lengths {len(self)} and {len(other)}")
            f = max(self.frac_bits, other.frac_bits)
            return self._new(eng.mul_pairs(pk._n2, self._scaled_to(f).tolist(), other._scaled_to(f).tolist()), f)
        arr, is_float = self._plain_operand(other)
        if is_float:
            f = max(self.frac_bits, DEFAULT_FRAC_BITS)
            plain = FixedPoint(f).encode(arr)
        else:
            f = self.frac_bits
            plain = FixedPoint(f).encode(as_int_array(arr))
        ms = pk._reduced(plain)
        return self._new(eng.add_plain(pk._n, pk._n2, self._scaled_to(f).tolist(), ms), f)

    def __radd__(self, other: object) -> EncryptedVector:
        return self.__add__(other)

    def __neg__(self) -> EncryptedVector:
        return self._new(eng.invert_all(self.public_key._n2, self._cipher_list()))

    def __sub__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            self._check_same_key(other)
            return self + (-other)
        arr, is_float = self._plain_operand(other)
        if is_float:
            return self + (-arr.astype(np.float64))
        return self + _objarray([-int(v) for v in as_int_array(arr).tolist()])

    def __rsub__(self, other: object) -> EncryptedVector:
        return (-self) + other

    # -- multiplication by plaintexts ----------------------------------------------------------
    def __mul__(self, other: object) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            raise TypeError("Paillier cannot multiply two ciphertexts")
        if _is_int_scalar(other):
            return self._scalar_pow(int(other))  # type: ignore[call-overload]
        if isinstance(other, float | np.floating):
            k = int(FixedPoint(DEFAULT_FRAC_BITS).encode(np.float64(other)).reshape(-1)[0])
            out = self._scalar_pow(k)
            out.frac_bits = self.frac_bits + DEFAULT_FRAC_BITS
            return out
        arr, is_float = self._plain_operand(other)
        if is_float:
            return self._pow_pairs(FixedPoint(DEFAULT_FRAC_BITS).encode(arr), self.frac_bits + DEFAULT_FRAC_BITS)
        return self._pow_pairs(as_int_array(arr), self.frac_bits)

    def __rmul__(self, other: object) -> EncryptedVector:
        return self.__mul__(other)

    def _pow_pairs(self, ks: np.ndarray, frac_bits: int) -> EncryptedVector:
        exps = [int(k) for k in ks.tolist()]
        e_bits = max((abs(k).bit_length() for k in exps), default=1)
        n_workers = self._workers_for(1.2 * max(e_bits, 1) + 10)
        if n_workers == 1:
            return self._new(eng.powmod_pairs(self.public_key._n2, self._cipher_list(), exps), frac_bits)
        e_width = e_bits // 8 + 1
        blob = b"".join([k.to_bytes(e_width, "big", signed=True) for k in exps])
        bounds = runner.chunk_bounds(
            len(self), n_workers, max_chunk=runner.max_chunk_rows(self.public_key.ciphertext_bytes)
        )
        rows = self._map_rows(
            eng.w_powmod_pairs,
            lambda lo, hi: (blob[lo * e_width : hi * e_width], e_width),
            bounds,
            n_workers,
            len(self),
        )
        return EncryptedVector._from_rows(self.public_key, rows, None, frac_bits)

    # -- reductions ----------------------------------------------------------------------------
    def sum(self) -> EncryptedVector:
        """A length-1 vector with the sum of all elements (a fresh encryption of 0 if empty)."""
        return self.segment_sum(np.zeros(len(self), dtype=np.int64), 1)

    def segment_sum(self, segment_ids: ArrayLike, n_segments: int, *, fresh_empty: bool = True) -> EncryptedVector:
        """``out[k]`` = sum of ``self[i]`` over ``segment_ids[i] == k``; an empty segment is a fresh encryption of 0.

        ``segment_ids`` has one id per element, or a row of ``m`` ids per element (shape
        ``(len, m)``): element ``i`` then adds to each segment of its row, as if the vector
        were repeated ``m`` times without the copies -- a histogram of ``m`` features in one
        call.  With ``fresh_empty=False`` an empty segment is the trivial ciphertext ``1``
        instead (no randomness: only for results the caller re-randomises before they leave).

        The histogram primitive of SecureBoost: one modular multiplication per id, split
        over the worker pool for large inputs in chunks of bounded size (each worker gets
        each distinct ciphertext of its chunk once, so ``v.take(np.tile(rows, f))`` does not
        ship ``f`` copies either).
        """
        if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 0:
            raise ValueError(f"n_segments must be a non-negative integer, got {n_segments!r}")
        seg = np.asarray(segment_ids)
        if seg.ndim not in (1, 2) or seg.shape[0] != len(self) or (seg.size and seg.dtype.kind not in "iu"):
            raise ValueError(f"segment_ids must be {len(self)} integers or {len(self)} rows of integers")
        if seg.size and (int(seg.min()) < 0 or int(seg.max()) >= n_segments):
            raise ValueError(f"segment_ids must lie in [0, {n_segments})")
        cols = seg.shape[1] if seg.ndim == 2 else 0
        pk = self.public_key
        n2 = pk._n2
        n_workers = self._workers_for(float(max(cols, 1)))
        acc: list[Any]
        if n_workers == 1 or seg.size == 0:
            if cols:
                acc = eng.segment_product_rows(n2, self._cipher_list(), seg.tolist(), n_segments)
            else:
                acc = eng.segment_product(n2, self._cipher_list(), seg.tolist(), n_segments)
        else:
            acc = [None] * n_segments
            width = pk.ciphertext_bytes
            # chunks hold at least 4 ids per segment: merging their results costs little next to building them
            bounds = runner.chunk_bounds(
                len(self),
                n_workers,
                min_chunk=-(-4 * n_segments // max(cols, 1)),
                max_chunk=runner.max_chunk_rows(width),
            )

            def ids(lo: int, hi: int) -> tuple[bytes, int, int]:
                return seg[lo:hi].astype(np.int64, copy=False).tobytes(), n_segments, cols

            for data in self._map_chunks(eng.w_segment, ids, bounds, n_workers):
                part = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)
                live = np.flatnonzero(part.any(axis=1))
                for k, c in zip(live.tolist(), eng.from_rows(part[live]), strict=True):
                    a = acc[k]
                    acc[k] = c if a is None else a * c % n2
        empty = [k for k in range(n_segments) if acc[k] is None]
        fill = pk._randomisers(len(empty)) if fresh_empty else [_ONE] * len(empty)
        for k, r in zip(empty, fill, strict=True):
            acc[k] = r
        return self._new(acc)

    def dot(self, matrix: ArrayLike) -> EncryptedVector:
        """``out[j] = sum_i self[i] * matrix[i, j]`` (a 1-d ``matrix`` gives one output).

        Integer matrices keep ``frac_bits``; float matrices are fixed point with 40 bits,
        which add to the vector's.  Multi-exponentiation: Pippenger buckets per column
        for tall matrices, per-row fixed-base tables for wide ones, one inversion per
        column for the negative entries.
        """
        mat = np.asarray(matrix)
        if mat.ndim == 1:
            mat = mat.reshape(-1, 1)
        if mat.ndim != 2 or mat.shape[0] != len(self):
            raise ValueError(f"matrix of shape {mat.shape} does not match a vector of {len(self)}")
        if mat.dtype.kind == "f" or (mat.dtype == object and not all(_is_int_scalar(v) for v in mat.flat)):
            ks, fits = _int_matrix(FixedPoint(DEFAULT_FRAC_BITS).encode(mat.astype(np.float64)))
            f = self.frac_bits + DEFAULT_FRAC_BITS
        elif mat.dtype.kind in "biuO":
            ks, fits = _int_matrix(mat)
            f = self.frac_bits
        else:
            raise TypeError(f"cannot multiply by a matrix of dtype {mat.dtype}")
        pk = self.public_key
        n2 = pk._n2
        rows_n, cols = ks.shape
        if not fits:  # exponents beyond 63 bits: plain powmods
            pairs = [eng.powmod_pairs(n2, self._cipher_list(), [int(v) for v in ks[:, j]]) for j in range(cols)]
            out = [_product(n2, col) for col in pairs]
            return self._new(self._fresh_if_trivial(out), f)
        bits = int(np.abs(ks).max(initial=0)).bit_length()
        cost = eng.multiexp_cost(rows_n, cols, bits)
        n_workers = runner.parallel_workers(cost, pk.bits) if rows_n >= 8 else 1
        if n_workers == 1:
            halves = eng.multiexp(n2, self._cipher_list(), ks)
        else:
            bounds = runner.chunk_bounds(rows_n, n_workers)
            data = self._map_rows(eng.w_multiexp, lambda lo, hi: (ks[lo:hi].tobytes(), cols), bounds, n_workers)
            values = eng.from_rows(data)
            halves = [(_ONE, _ONE)] * cols
            for chunk in range(len(bounds)):
                base = chunk * 2 * cols
                halves = [
                    (a * values[base + 2 * j] % n2, b * values[base + 2 * j + 1] % n2)
                    for j, (a, b) in enumerate(halves)
                ]
        negs = [j for j, (_, b) in enumerate(halves) if b != 1]
        invs = dict(zip(negs, eng.invert_all(n2, [halves[j][1] for j in negs]), strict=True))
        result = [a * invs[j] % n2 if j in invs else a for j, (a, _) in enumerate(halves)]
        return self._new(self._fresh_if_trivial(result), f)

    def _fresh_if_trivial(self, cts: list[Any]) -> list[Any]:
        """Replace the trivial ciphertext 1 (an all-zero column) by a fresh encryption of 0."""
        trivial = [j for j, c in enumerate(cts) if c == 1]
        for j, r in zip(trivial, self.public_key._randomisers(len(trivial)), strict=True):
            cts[j] = r
        return cts

    def pack_slots(self, slot_bits: int, per: int) -> EncryptedVector:
        """Pack each group of ``per`` consecutive ciphertexts into one: ``sum_j c_j * 2**(j * slot_bits)``.

        The caller guarantees every plaintext is in ``[0, 2**slot_bits)`` and that
        ``per * slot_bits`` bits fit under ``max_int``; the last group may be shorter.
        Decrypt with ``decrypt_ints`` and split with :func:`jointly.crypto.encoding.unpack_slots`.
        The result keeps this vector's ``frac_bits`` (that of every slot).
        """
        if isinstance(slot_bits, bool) or not isinstance(slot_bits, int) or slot_bits < 1:
            raise ValueError(f"slot_bits must be a positive integer, got {slot_bits!r}")
        if isinstance(per, bool) or not isinstance(per, int) or per < 1:
            raise ValueError(f"per must be a positive integer, got {per!r}")
        if per * slot_bits > self.public_key.max_int.bit_length() - 1:
            raise OverflowError(f"{per} slots of {slot_bits} bits do not fit under max_int")
        n_workers = self._workers_for(1.2 * slot_bits + 1)
        groups = math.ceil(len(self) / per)
        if n_workers == 1 or groups < 2:
            return self._new(eng.pack_groups(self.public_key._n2, self._cipher_list(), slot_bits, per))
        cap = max(1, runner.max_chunk_rows(self.public_key.ciphertext_bytes) // per)
        bounds = [
            (lo * per, min(hi * per, len(self))) for lo, hi in runner.chunk_bounds(groups, n_workers, max_chunk=cap)
        ]
        rows = self._map_rows(eng.w_pack, lambda lo, hi: (slot_bits, per), bounds, n_workers, groups)
        return EncryptedVector._from_rows(self.public_key, rows, None, self.frac_bits)

    def rerandomize(self) -> EncryptedVector:
        """The same plaintexts under fresh randomness (unlinkable to these ciphertexts)."""
        rs = self.public_key._randomisers(len(self))
        return self._new(eng.mul_pairs(self.public_key._n2, self._cipher_list(), rs))

    # -- wire ----------------------------------------------------------------------------------
    def to_wire(self) -> WireCiphertexts:
        """The ciphertexts as one :class:`WireCiphertexts` message (send through the codec)."""
        rows, idx = self._cipher_rows()
        data = (rows if idx is None else rows[idx]).tobytes()
        return WireCiphertexts(self.public_key.fingerprint, self.frac_bits, len(self), data)

    def to_wire_blocks(self, block: int) -> Iterator[WireCiphertexts]:
        """The ciphertexts as consecutive :class:`WireCiphertexts` of at most ``block`` each (at least one).

        For a long vector: every message is small, and only the block being sent is copied.
        The receiver joins them with :meth:`from_wire_blocks`.
        """
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive integer, got {block!r}")
        rows, idx = self._cipher_rows()
        size = len(self)
        for lo in range(0, max(size, 1), block):
            hi = min(lo + block, size)
            part = rows[lo:hi] if idx is None else rows[idx[lo:hi]]
            yield WireCiphertexts(self.public_key.fingerprint, self.frac_bits, hi - lo, part.tobytes())

    @classmethod
    def from_wire_blocks(cls, public_key: PaillierPublicKey, msgs: Iterable[object], count: int) -> EncryptedVector:
        """One vector of ``count`` ciphertexts from consecutive blocks (see :meth:`to_wire_blocks`).

        Each block gets the checks of :meth:`from_wire` and is copied into place as it comes,
        so only one block's message is held besides the result.  Raises ProtocolViolation
        if the blocks do not add up to ``count`` or disagree on ``frac_bits``.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        width = public_key.ciphertext_bytes
        out = np.empty((count, width), dtype=np.uint8)
        at = 0
        frac_bits: int | None = None
        for msg in msgs:
            part = cls.from_wire(public_key, msg)
            if frac_bits is not None and part.frac_bits != frac_bits:
                raise ProtocolViolation("ciphertext blocks disagree on frac_bits")
            frac_bits = part.frac_bits
            n = len(part)
            if at + n > count:
                raise ProtocolViolation(f"ciphertext blocks hold more than the {count} announced")
            rows, _ = part._cipher_rows()
            out[at : at + n] = rows
            at += n
            del part, rows
        if at != count or frac_bits is None:
            raise ProtocolViolation(f"ciphertext blocks hold {at} ciphertexts, expected {count}")
        return cls._from_rows(public_key, out, None, frac_bits)

    @classmethod
    def from_wire(cls, public_key: PaillierPublicKey, msg: object) -> EncryptedVector:
        """Rebuild a peer's vector under ``public_key``.

        Raises :class:`KeyMismatch` if it was made under another key and
        :class:`ProtocolViolation` if it is malformed or any ciphertext is outside ``[1, n^2)``.
        """
        if not isinstance(msg, WireCiphertexts):
            raise ProtocolViolation(f"expected WireCiphertexts, got {type(msg).__name__}")
        if not isinstance(msg.fingerprint, bytes) or msg.fingerprint != public_key.fingerprint:
            raise KeyMismatch("ciphertexts were made under a different Paillier key")
        fb, count, data = msg.frac_bits, msg.count, msg.data
        if isinstance(fb, bool) or not isinstance(fb, int) or not 0 <= fb <= public_key.bits:
            raise ProtocolViolation(f"bad frac_bits {fb!r}")
        width = public_key.ciphertext_bytes
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or not isinstance(data, bytes):
            raise ProtocolViolation("malformed ciphertext vector")
        if len(data) != count * width:
            raise ProtocolViolation(f"ciphertext data is {len(data)} bytes, expected {count} x {width}")
        rows = np.frombuffer(data, dtype=np.uint8).reshape(count, width)
        bad = eng.first_out_of_range(rows, public_key.nsquare)
        if bad >= 0:
            raise ProtocolViolation(f"ciphertext {bad} is outside [1, n^2)")
        return cls._from_rows(public_key, rows, None, fb)


def _product(n2: Any, values: Sequence[Any]) -> Any:
    acc = _ONE
    for v in values:
        acc = acc * v % n2
    return acc
