"""Hash-to-curve onto Curve25519 and a commutative cipher for ECDH-based PSI.

Value code only: no I/O beyond a lazily started local process pool.

**Hashing** follows RFC 9380 for the suite ``curve25519_XMD:SHA-512_ELL2_NU_``:
:func:`expand_message_xmd` with SHA-512, :func:`hash_to_field` (48 bytes, read
big-endian, reduced mod ``p = 2^255 - 19``) and the Elligator 2 map
:func:`map_to_curve_elligator2` (``Z = 2``, ``A = 486662``, ``B = 1``).  Only the
Montgomery u-coordinate is computed: scalar multiplication is X25519, which is
x-only.  The RFC's ``encode_to_curve`` ends with ``clear_cofactor`` (``P = 8Q``);
we stop at ``Q`` (:func:`encode_to_curve_u`), because every X25519 scalar is
clamped to a multiple of 8, so ``X25519(k, Q) = [k/8]P`` already lies in the
prime-order subgroup.

**Encrypting** is X25519 (OpenSSL, constant time) with a fresh random secret per
job: ``E_a(x) = X25519(a, H(x))``.  It commutes, ``X25519(a, X25519(b, Q)) ==
X25519(b, X25519(a, Q))``, which is what DH-PSI needs.  :class:`EcdhKey` works on
whole batches (numpy ``'S32'`` arrays of little-endian u-coordinates) and spreads
them over a process pool (forkserver or spawn, never fork: nodes run gRPC
threads).  Points from a peer are checked: a non-canonical encoding or a
low-order point (X25519 gives all zeros) raises
:class:`~jointly.errors.ProtocolViolation`.  Curve25519 is twist-secure, so an
off-curve u cannot extract key bits and is not rejected separately.

Caveat: hash-to-curve runs in Python with gmpy2 and is *not* constant time; it
hashes a party's own ids on its own machine, so only an attacker timing single
elements on that machine could learn from it.  The secret scalar only ever meets
OpenSSL's constant-time X25519.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import multiprocessing
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from jointly.errors import ConfigError, JointlyError, ProtocolViolation

__all__ = [
    "POINT_BYTES",
    "PSI_DST",
    "SUITE",
    "A",
    "EcdhKey",
    "L",
    "P",
    "Z",
    "encode_to_curve_points",
    "encode_to_curve_u",
    "expand_message_xmd",
    "hash_to_field",
    "is_on_curve_u",
    "map_to_curve_elligator2",
    "shutdown_pools",
]

P = 2**255 - 19  #: the field prime of Curve25519
A = 486662  #: Montgomery coefficient of Curve25519 (B = 1)
Z = 2  #: Elligator 2 non-square constant of the suite (RFC 9380, section 8.5)
L = 48  #: bytes per field element in hash_to_field: ceil((ceil(log2 p) + 128) / 8)
SUITE = b"curve25519_XMD:SHA-512_ELL2_NU_"
#: jointly's domain-separation tag for PSI (RFC 9380 section 3.1: application, version, suite)
PSI_DST = b"JOINTLY-PSI-V01-CS02-with-" + SUITE
POINT_BYTES = 32

_P = gmpy2.mpz(P)
_NEG_A = gmpy2.mpz(P - A)
_H_BLOCK = 128  # SHA-512 input block size (s_in_bytes)
_H_OUT = 64  # SHA-512 output size (b_in_bytes)
_ZERO_BLOCK_STATE = hashlib.sha512(bytes(_H_BLOCK))  # Z_pad absorbed once, copied per message
_INLINE_MAX = 256  # batches this small are not worth a trip to the process pool
_CHUNKS_PER_WORKER = 4


# -- RFC 9380 building blocks ---------------------------------------------------------------
def _dst_prime(dst: bytes) -> bytes:
    if len(dst) > 255:  # RFC 9380, section 5.3.3
        dst = hashlib.sha512(b"H2C-OVERSIZE-DST-" + dst).digest()
    return dst + bytes([len(dst)])


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-512: ``len_in_bytes`` uniform bytes from ``msg`` under ``dst``."""
    ell = math.ceil(len_in_bytes / _H_OUT)
    if len_in_bytes < 1 or ell > 255 or len_in_bytes > 65535:
        raise ValueError(f"expand_message_xmd cannot produce {len_in_bytes} bytes with SHA-512")
    dst_prime = _dst_prime(dst)
    h = _ZERO_BLOCK_STATE.copy()
    h.update(msg)
    h.update(len_in_bytes.to_bytes(2, "big") + b"\x00" + dst_prime)
    b_0 = h.digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    out = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        out.append(b_i)
    return b"".join(out)[:len_in_bytes]


def hash_to_field(msg: bytes, count: int = 1, *, dst: bytes = PSI_DST) -> list[int]:
    """RFC 9380 section 5.2 for GF(p), m = 1, L = 48: ``count`` field elements from ``msg``."""
    uniform = expand_message_xmd(msg, dst, count * L)
    return [int.from_bytes(uniform[i * L : (i + 1) * L], "big") % P for i in range(count)]


def _elligator2_u(u: gmpy2.mpz) -> gmpy2.mpz:
    """The u-coordinate of map_to_curve_elligator2(u) (RFC 9380, section 6.7.1, K = 1, B = 1)."""
    tv1 = (Z * u * u) % _P
    if tv1 == _P - 1:  # never happens for p = 2^255 - 19 (-1/2 is not a square), kept as in the RFC
        tv1 = gmpy2.mpz(0)
    x1 = (_NEG_A * gmpy2.invert(tv1 + 1, _P)) % _P  # -A / (1 + Z u^2); the denominator is never 0
    gx1 = (x1 * ((x1 + A) * x1 + 1)) % _P  # x1^3 + A x1^2 + x1
    if gmpy2.legendre(gx1, _P) == -1:  # is_square(gx1) is false: take x2 = -x1 - A
        return (-x1 - A) % _P
    return x1


def map_to_curve_elligator2(u: int) -> int:
    """Elligator 2 onto Curve25519: the Montgomery u-coordinate (``Q.x``) of the point for field element ``u``."""
    if not 0 <= u < P:
        raise ValueError("u must be a field element in [0, p)")
    return int(_elligator2_u(gmpy2.mpz(u)))


def encode_to_curve_u(msg: bytes, *, dst: bytes = PSI_DST) -> int:
    """``Q.x`` of RFC 9380 ``encode_to_curve`` for ``curve25519_XMD:SHA-512_ELL2_NU_`` (cofactor not cleared)."""
    return map_to_curve_elligator2(hash_to_field(msg, 1, dst=dst)[0])


def is_on_curve_u(u: int) -> bool:
    """Whether ``u`` is the u-coordinate of a point of Curve25519 (``u^3 + A u^2 + u`` is a square mod p)."""
    v = gmpy2.mpz(u) % _P
    return bool(gmpy2.legendre((v * ((v + A) * v + 1)) % _P, _P) != -1)


# -- batch kernels (run in the caller or in pool workers; arguments are flat bytes) ---------
def _hash_chunk(secret: bytes | None, dst: bytes, blob: bytes, lengths: bytes) -> bytes:
    """Hash each message of ``blob`` (split by ``lengths``, uint32) to the curve, then apply ``secret``.

    Returns ``32 * n`` bytes; an element whose X25519 result is all zeros is left as zeros.
    """
    dst_prime = _dst_prime(dst)
    tail_0 = L.to_bytes(2, "big") + b"\x00" + dst_prime
    tail_1 = b"\x01" + dst_prime
    sizes = np.frombuffer(lengths, dtype="<u4").tolist()
    out = bytearray(POINT_BYTES * len(sizes))
    view = memoryview(blob)
    sha512, zero_block = hashlib.sha512, _ZERO_BLOCK_STATE
    to_int, mpz, ell2 = int.from_bytes, gmpy2.mpz, _elligator2_u
    exchange = X25519PrivateKey.from_private_bytes(secret).exchange if secret is not None else None
    from_public = X25519PublicKey.from_public_bytes
    pos = 0
    for i, size in enumerate(sizes):
        h = zero_block.copy()
        h.update(view[pos : pos + size])
        h.update(tail_0)
        pos += size
        uniform = sha512(h.digest() + tail_1).digest()
        point = int(ell2(mpz(to_int(uniform[:L], "big")) % _P)).to_bytes(POINT_BYTES, "little")
        if exchange is not None:
            try:
                point = exchange(from_public(point))
            except ValueError:  # low-order point: leave zeros for the caller to report
                continue
        out[i * POINT_BYTES : (i + 1) * POINT_BYTES] = point
    return bytes(out)


def _reencrypt_chunk(secret: bytes, blob: bytes) -> bytes:
    """Apply ``secret`` to each 32-byte u-coordinate of ``blob``; low-order inputs give zeros."""
    exchange = X25519PrivateKey.from_private_bytes(secret).exchange
    from_public = X25519PublicKey.from_public_bytes
    out = bytearray(len(blob))
    for off in range(0, len(blob), POINT_BYTES):
        try:
            out[off : off + POINT_BYTES] = exchange(from_public(blob[off : off + POINT_BYTES]))
        except ValueError:
            continue
    return bytes(out)


# -- the process pool -----------------------------------------------------------------------
_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _resolve_workers(workers: int | None) -> int:
    if workers is None:
        return _default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer or None, got {workers!r}")
    return workers


def _pool(workers: int) -> ProcessPoolExecutor:
    """The process's pool with ``workers`` processes, started on first use and then reused.

    Never forks the caller (which may run gRPC threads): forkserver where the
    platform has it, spawn otherwise.
    """
    with _POOL_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            _POOLS[workers] = pool
        return pool


def shutdown_pools() -> None:
    """Stop every worker pool this process started (they restart lazily when needed)."""
    with _POOL_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pools)


def _in_pool(workers: int, fn: Callable[..., bytes], chunks: Sequence[tuple[object, ...]]) -> bytes:
    """Run ``fn`` on every chunk in the pool and join the results in order.

    A pool whose worker died is dropped, so the next call starts a fresh one.
    """
    pool = _pool(workers)
    try:
        futures = [pool.submit(fn, *args) for args in chunks]
        return b"".join(f.result() for f in futures)
    except BrokenProcessPool as exc:
        with _POOL_LOCK:
            if _POOLS.get(workers) is pool:
                del _POOLS[workers]
        raise JointlyError(f"a curve-arithmetic worker process died: {exc}") from exc


def _chunk_bounds(n: int, workers: int) -> list[tuple[int, int]]:
    size = max(_INLINE_MAX // 2, math.ceil(n / (workers * _CHUNKS_PER_WORKER)))
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def _run_hash(secret: bytes | None, ids: Sequence[bytes], dst: bytes, workers: int | None) -> np.ndarray:
    n = len(ids)
    try:
        blob = b"".join(ids)
    except TypeError as exc:
        raise TypeError("ids must be a sequence of bytes (canonical id encodings)") from exc
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
    if n and int(lengths.max()) >= 1 << 32:
        raise ValueError("an id is over 4 GiB")
    lengths_u32 = lengths.astype("<u4")
    w = _resolve_workers(workers)
    if w == 1 or n <= _INLINE_MAX:
        out = _hash_chunk(secret, dst, blob, lengths_u32.tobytes())
    else:
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        out = _in_pool(
            w,
            _hash_chunk,
            [
                (secret, dst, blob[int(offsets[lo]) : int(offsets[hi])], lengths_u32[lo:hi].tobytes())
                for lo, hi in _chunk_bounds(n, w)
            ],
        )
    return np.frombuffer(out, dtype=f"S{POINT_BYTES}").copy()


def _zero_rows(points: np.ndarray) -> np.ndarray:
    raw = np.frombuffer(points.tobytes(), dtype=np.uint8).reshape(-1, POINT_BYTES)
    return np.flatnonzero(~raw.any(axis=1))


def _noncanonical_rows(raw: np.ndarray) -> np.ndarray:
    """Rows that are not the canonical encoding of a u in [0, p): top bit set, or u >= p."""
    top = raw[:, POINT_BYTES - 1]
    over_p = (top == 0x7F) & (raw[:, 1 : POINT_BYTES - 1] == 0xFF).all(axis=1) & (raw[:, 0] >= 0xED)
    return np.flatnonzero((top >= 0x80) | over_p)


def encode_to_curve_points(ids: Sequence[bytes], *, dst: bytes = PSI_DST, workers: int | None = 1) -> np.ndarray:
    """Unkeyed ``Q.x`` of every message, as an ``'S32'`` array of little-endian u-coordinates.

    Never send these: anyone can recompute them from a guessed id.  Useful for tests.
    """
    return _run_hash(None, ids, dst, workers)


# -- the commutative cipher -----------------------------------------------------------------
class EcdhKey:
    """A party's secret X25519 scalar for one job: ``hash_encrypt`` its ids, ``reencrypt`` a peer's points.

    >>> a, b = EcdhKey.generate(), EcdhKey.generate()
    >>> bool((b.reencrypt(a.hash_encrypt([b"x"])) == a.reencrypt(b.hash_encrypt([b"x"]))).all())
    True

    The secret never leaves the process except to this machine's own worker
    processes; the key cannot be pickled and its ``repr`` hides it.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise ValueError("an X25519 secret is exactly 32 bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> EcdhKey:
        """A fresh key from the operating system's CSPRNG; use one per job and party."""
        return cls(secrets.token_bytes(32))

    def __repr__(self) -> str:
        return "EcdhKey(<secret>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("EcdhKey holds a secret and cannot be pickled")

    def hash_encrypt(self, ids: Sequence[bytes], *, dst: bytes = PSI_DST, workers: int | None = None) -> np.ndarray:
        """``X25519(key, Q(id))`` for each id (bytes), in order, as an ``'S32'`` array.

        ``workers``: processes to use (``None``: every core this process may run on).
        """
        out = _run_hash(self._secret, ids, dst, workers)
        bad = _zero_rows(out)
        if len(bad):  # needs a SHA-512 preimage of a low-order point: practically impossible
            raise JointlyError(f"id at position {int(bad[0])} hashed to a low-order point")
        return out

    def reencrypt(self, points: np.ndarray, *, workers: int | None = None) -> np.ndarray:
        """Apply this key to a peer's points (``'S32'`` array), in order.

        Raises :class:`~jointly.errors.ProtocolViolation` for anything that is
        not a canonical encoding of a point of order larger than 8.
        """
        if not isinstance(points, np.ndarray) or points.dtype != np.dtype(f"S{POINT_BYTES}") or points.ndim != 1:
            raise ProtocolViolation(f"expected a 1-d array of {POINT_BYTES}-byte points")
        blob = points.tobytes()
        n = len(points)
        raw = np.frombuffer(blob, dtype=np.uint8).reshape(n, POINT_BYTES)
        bad = _noncanonical_rows(raw)
        if len(bad):
            raise ProtocolViolation(f"{len(bad)} point(s) are not canonical encodings, first at position {bad[0]}")
        w = _resolve_workers(workers)
        if w == 1 or n <= _INLINE_MAX:
            out = _reencrypt_chunk(self._secret, blob)
        else:
            chunks = [(self._secret, blob[lo * POINT_BYTES : hi * POINT_BYTES]) for lo, hi in _chunk_bounds(n, w)]
            out = _in_pool(w, _reencrypt_chunk, chunks)
        result = np.frombuffer(out, dtype=f"S{POINT_BYTES}").copy()
        bad = _zero_rows(result)
        if len(bad):
            raise ProtocolViolation(f"{len(bad)} low-order point(s) from a peer, first at position {bad[0]}")
        return result
