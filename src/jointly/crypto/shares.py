"""Additive secret sharing over the ring ``Z_2^64``: a vectorised value type for two-party computation.

A secret array ``x`` is split into two uniformly random ``np.uint64`` arrays with
``x = x0 + x1 (mod 2**64)``; each compute party holds one.  Reals are fixed point:
``round(v * 2**frac_bits)`` read as a two's-complement ``int64`` (encoding error at
most ``2**-(frac_bits+1)``; values must stay below ``2**(63 - frac_bits)`` in magnitude,
and below ``2**(62 - 2*frac_bits)`` wherever two of them are multiplied).

:class:`SharedTensor` is one party's share with operators.  Addition, subtraction,
negation and products with *public* integers are local.  Products with public floats
are local multiplications followed by a truncation, and products of two shared tensors,
matrix products and comparisons need the other party: they are delegated to the
:class:`ShareEngine` the tensor carries (implemented in :mod:`jointly.protocols.mpc`).
``bool(x)`` raises, so no code can branch on a secret.

Also here: the fixed-point codec of the ring and an AES-256-CTR pseudo-random generator
of ``uint64`` words (the source of every share and mask).  Value code only: no I/O.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol, runtime_checkable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import ArrayLike

from jointly.errors import ConfigError

__all__ = [
    "DEFAULT_MPC_FRAC_BITS",
    "SecretBranchError",
    "ShareEngine",
    "SharedTensor",
    "decode_fixed",
    "encode_fixed",
    "prg_words",
    "random_words",
    "split",
]

DEFAULT_MPC_FRAC_BITS = 16  #: fractional bits of MPC fixed point
U64 = np.uint64
_MAX_ABS = float(2**62)
_SEED_BYTES = 32


class SecretBranchError(TypeError):
    """Raised by ``bool()`` on a secret: reveal it first (and say to whom)."""


def encode_fixed(values: ArrayLike, frac_bits: int) -> np.ndarray:
    """Reals (or integers) as ring elements: ``round(v * 2**frac_bits) mod 2**64``.

    Raises :class:`ConfigError` for values that are not finite or would not fit in 62 bits.
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iub" and frac_bits == 0:
        return arr.astype(np.int64).view(U64)
    scaled = np.rint(np.asarray(arr, dtype=np.float64) * float(2**frac_bits))
    if scaled.size and not (np.isfinite(scaled).all() and np.abs(scaled).max() < _MAX_ABS):
        raise ConfigError(f"values do not fit the ring with {frac_bits} fractional bits (|v| * 2**f >= 2**62)")
    return scaled.astype(np.int64).view(U64)


def decode_fixed(ring: np.ndarray, frac_bits: int) -> np.ndarray:
    """Ring elements back to float64 (two's complement, then divided by ``2**frac_bits``)."""
    return np.asarray(ring, dtype=U64).view(np.int64).astype(np.float64) / float(2**frac_bits)


def prg_words(seed: bytes, nonce: int, count: int) -> np.ndarray:
    """``count`` pseudo-random uint64 words: the AES-256-CTR keystream of ``seed`` from block ``nonce * 2**64``."""
    if len(seed) != _SEED_BYTES:
        raise ConfigError(f"a PRG seed has {_SEED_BYTES} bytes, got {len(seed)}")
    iv = (nonce % (1 << 64)).to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(iv)).encryptor()
    nbytes = 8 * count
    out = np.empty(count + 2, dtype=U64)  # update_into wants room for one extra block
    written = enc.update_into(bytes(nbytes), out.data.cast("B"))
    if written != nbytes:  # pragma: no cover - CTR is a stream mode
        raise RuntimeError("short AES-CTR keystream")
    return out[:count]


def random_words(shape: int | tuple[int, ...]) -> np.ndarray:
    """Fresh uniformly random uint64 words of ``shape`` (AES-CTR under a key from :mod:`secrets`)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    count = int(np.prod(dims, dtype=np.int64))
    return prg_words(secrets.token_bytes(_SEED_BYTES), 0, count).reshape(dims)


def split(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uniformly random shares of the ring array ``ring``: ``(r, ring - r)``."""
    ring = np.asarray(ring, dtype=U64)
    r = random_words(ring.shape)
    return r, ring - r


@runtime_checkable
class ShareEngine(Protocol):
    """What a :class:`SharedTensor` needs from the two-party protocol it runs in."""

    @property
    def party_index(self) -> int:
        """0 or 1: which share this party holds (party 0 adds public constants)."""
        ...

    @property
    def frac_bits(self) -> int:
        """Fractional bits of the fixed-point encoding of public reals."""
        ...

    def mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """Element-wise product of two secrets (shapes equal after broadcasting)."""
        ...

    def matmul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """Matrix product of two secrets (2-d, or 1-d as in numpy)."""
        ...

    def truncate(self, x: SharedTensor, bits: int) -> SharedTensor:
        """``x / 2**bits`` rounded down (possibly off by one unit), ``frac_bits`` lowered by ``bits``."""
        ...

    def ltz(self, x: SharedTensor) -> SharedTensor:
        """``[x < 0]`` as a shared integer 0/1 (``frac_bits`` 0)."""
        ...


class SharedTensor:
    """One party's additive share of a secret array, with fixed-point scale ``frac_bits``.

    Both parties hold a ``SharedTensor`` of the same shape and scale; the secret is the
    sum of the two ``share`` arrays modulo ``2**64``, divided by ``2**frac_bits``.
    """

    __slots__ = ("engine", "frac_bits", "share")
    __array_ufunc__ = None  # numpy must hand ``array * tensor`` to our reflected operators

    def __init__(self, engine: ShareEngine, share: np.ndarray, frac_bits: int) -> None:
        share = np.asarray(share)  # 0-d arithmetic gives numpy scalars
        if not isinstance(share, np.ndarray) or share.dtype != U64:
            raise TypeError("a share is a numpy uint64 array")
        if not 0 <= frac_bits < 62:
            raise ConfigError(f"frac_bits must lie in [0, 62), got {frac_bits}")
        self.engine = engine
        self.share = share
        self.frac_bits = int(frac_bits)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def public(cls, engine: ShareEngine, values: ArrayLike, frac_bits: int | None = None) -> SharedTensor:
        """A sharing of a public value (party 0 holds it, party 1 holds zeros)."""
        f = engine.frac_bits if frac_bits is None else frac_bits
        ring = encode_fixed(values, f)
        share = ring.copy() if engine.party_index == 0 else np.zeros_like(ring)
        return cls(engine, share, f)

    def _new(self, share: np.ndarray, frac_bits: int | None = None) -> SharedTensor:
        return SharedTensor(self.engine, share, self.frac_bits if frac_bits is None else frac_bits)

    # -- shape ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.share.shape)

    @property
    def size(self) -> int:
        return int(self.share.size)

    @property
    def ndim(self) -> int:
        return int(self.share.ndim)

    def __len__(self) -> int:
        return len(self.share)

    def reshape(self, *shape: Any) -> SharedTensor:
        return self._new(self.share.reshape(*shape))

    def flatten(self) -> SharedTensor:
        return self._new(self.share.reshape(-1).copy())

    @property
    def T(self) -> SharedTensor:  # noqa: N802 - numpy's name
        return self._new(self.share.T)

    def __getitem__(self, index: Any) -> SharedTensor:
        return self._new(np.asarray(self.share[index]))

    def sum(self, axis: int | None = None) -> SharedTensor:
        """Sum (local: shares add up)."""
        return self._new(np.asarray(self.share.sum(axis=axis, dtype=U64), dtype=U64))

    @staticmethod
    def concat(parts: list[SharedTensor], axis: int = 0) -> SharedTensor:
        """Concatenation of tensors of one engine, brought to the largest scale."""
        if not parts:
            raise ValueError("nothing to concatenate")
        f = max(p.frac_bits for p in parts)
        shares = [p.rescaled(f).share for p in parts]
        return SharedTensor(parts[0].engine, np.concatenate(shares, axis=axis), f)

    @staticmethod
    def stack(parts: list[SharedTensor], axis: int = 0) -> SharedTensor:
        if not parts:
            raise ValueError("nothing to stack")
        f = max(p.frac_bits for p in parts)
        return SharedTensor(parts[0].engine, np.stack([p.rescaled(f).share for p in parts], axis=axis), f)

    def rescaled(self, frac_bits: int) -> SharedTensor:
        """The same secret with at least as many fractional bits (a local shift left)."""
        if frac_bits < self.frac_bits:
            raise ValueError("rescaled() only adds fractional bits; use truncate() to drop them")
        if frac_bits == self.frac_bits:
            return self
        return self._new(self.share << U64(frac_bits - self.frac_bits), frac_bits)

    def truncate(self, bits: int) -> SharedTensor:
        """Drop ``bits`` fractional bits (interactive in dealer mode, see the engine)."""
        return self.engine.truncate(self, bits) if bits else self

    def to_frac(self, frac_bits: int) -> SharedTensor:
        """The same secret at scale ``frac_bits`` (shift left, or truncate)."""
        if frac_bits >= self.frac_bits:
            return self.rescaled(frac_bits)
        return self.truncate(self.frac_bits - frac_bits)

    # -- guards ---------------------------------------------------------------------------------
    def __bool__(self) -> bool:
        raise SecretBranchError("cannot branch on a secret-shared value: reveal it first")

    def __repr__(self) -> str:
        return f"SharedTensor(shape={self.shape}, frac_bits={self.frac_bits}, party={self.engine.party_index})"

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    # -- linear operations (local) ---------------------------------------------------------------
    def _public_ring(self, other: ArrayLike, frac_bits: int) -> np.ndarray:
        return encode_fixed(other, frac_bits)

    def _aligned(self, other: SharedTensor) -> tuple[np.ndarray, np.ndarray, int]:
        if other.engine is not self.engine:
            raise ValueError("cannot combine shares of different engines")
        f = max(self.frac_bits, other.frac_bits)
        return self.rescaled(f).share, other.rescaled(f).share, f

    def __add__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            a, b, f = self._aligned(other)
            return self._new(a + b, f)
        ring = self._public_ring(other, self.frac_bits)  # type: ignore[arg-type]
        if self.engine.party_index == 0:
            return self._new(self.share + ring)
        return self._new(np.broadcast_to(self.share, np.broadcast_shapes(self.shape, ring.shape)).copy())

    def __radd__(self, other: object) -> SharedTensor:
        return self.__add__(other)

    def __neg__(self) -> SharedTensor:
        return self._new(U64(0) - self.share)

    def __sub__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            a, b, f = self._aligned(other)
            return self._new(a - b, f)
        return self.__add__(-np.asarray(other))

    def __rsub__(self, other: object) -> SharedTensor:
        return (-self).__add__(other)

    # -- products -------------------------------------------------------------------------------
    def __mul__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            return self.engine.mul(self, other)
        arr = np.asarray(other)
        if arr.dtype.kind in "iub":
            return self._new(self.share * arr.astype(np.int64).view(U64))
        if arr.dtype.kind != "f":
            raise TypeError(f"cannot multiply a SharedTensor by {type(other).__name__}")
        f = self.engine.frac_bits
        prod = self._new(self.share * encode_fixed(arr, f), self.frac_bits + f)
        return self.engine.truncate(prod, f)

    def __rmul__(self, other: object) -> SharedTensor:
        return self.__mul__(other)

    def __matmul__(self, other: object) -> SharedTensor:
        if isinstance(other, SharedTensor):
            return self.engine.matmul(self, other)
        arr = np.asarray(other)
        if arr.dtype.kind in "iub":
            return self._new(np.asarray(self.share @ arr.astype(np.int64).view(U64), dtype=U64))
        f = self.engine.frac_bits
        prod = self._new(np.asarray(self.share @ encode_fixed(arr, f), dtype=U64), self.frac_bits + f)
        return self.engine.truncate(prod, f)

    def __rmatmul__(self, other: object) -> SharedTensor:
        arr = np.asarray(other)
        if arr.dtype.kind in "iub":
            return self._new(np.asarray(arr.astype(np.int64).view(U64) @ self.share, dtype=U64))
        f = self.engine.frac_bits
        prod = self._new(np.asarray(encode_fixed(arr, f) @ self.share, dtype=U64), self.frac_bits + f)
        return self.engine.truncate(prod, f)

    # -- comparisons (interactive; results are shared 0/1 integers) ------------------------------
    def _diff(self, other: object) -> SharedTensor:
        return self - other

    def __lt__(self, other: object) -> SharedTensor:
        return self.engine.ltz(self._diff(other))

    def __gt__(self, other: object) -> SharedTensor:
        return self.engine.ltz(-self._diff(other))

    def __le__(self, other: object) -> SharedTensor:
        return 1 - self.engine.ltz(-self._diff(other))

    def __ge__(self, other: object) -> SharedTensor:
        return 1 - self.engine.ltz(self._diff(other))

    __hash__ = None  # type: ignore[assignment]
