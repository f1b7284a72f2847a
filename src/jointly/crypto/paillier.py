"""Paillier additively homomorphic encryption over vectors.

Keys, ciphertext vectors and their homomorphic operations; value code only
(the arithmetic, randomisers and worker pool live in :mod:`._paillier_engine`).

**Scheme.**  ``n = p q`` with ``p, q`` primes of equal length, ``g = n + 1``, so
``E(m) = (1 + m n) r^n mod n^2`` needs no exponentiation for the ``g`` part, and
is computed as ``r^n + n ((m r^n) mod n)``.  The ``r^n`` factor is a
Damgård–Jurik–Nielsen randomiser ``hs^a`` with a ``bits/2``-bit exponent from a
fixed-base table, made ahead of time by a background pool (see the engine's
docstring for the exponent length and the security argument).  The key owner
decrypts with the CRT (``c^(p-1) mod p^2`` and ``c^(q-1) mod q^2``) and encrypts
with the CRT too (:meth:`PaillierPrivateKey.encrypt`).

Plaintexts are signed integers ``|m| <= max_int = n // 3`` mapped to ``m mod n``;
decryption maps ``[0, max_int]`` to itself, ``[n - max_int, n)`` to negatives and
refuses the middle band with :class:`OverflowError`: a result there overflowed.
Reals are fixed point (:mod:`jointly.crypto.encoding`); every vector carries
its ``frac_bits``, which add up under multiplication by plaintext reals.

**Who learns what.**  The key owner (holder of :class:`PaillierPrivateKey`) can
decrypt every ciphertext under its key.  Anyone holding only the public key
learns nothing about plaintexts (semantic security under the decisional
composite residuosity assumption), but homomorphic results are *not*
rerandomised: a product of the owner's own ciphertexts carries the product of
their randomisers, ``v * 0`` is the trivial ciphertext ``1``, and so on.  A
party sending results derived from the owner's ciphertexts back to the owner
should call :meth:`EncryptedVector.rerandomize` (or add a fresh encryption)
first if *which* operands went in (e.g. which rows fell into a bin) is secret.

**Parallelism.**  Encryption, decryption, ``segment_sum``, ``dot``, plaintext
multiplication and ``pack_slots`` on large vectors run in a process pool
(forkserver, every core by default; :func:`set_workers`).  Ciphertexts received
from the wire stay as bytes until something needs them as integers, so a host
can receive, ``take`` and ``segment_sum`` without converting them in its own
process.
"""

from __future__ import annotations

import hashlib
import secrets
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
from numpy.typing import ArrayLike

from jointly.crypto import _paillier_engine as eng
from jointly.crypto import _paillier_pool as runner
from jointly.crypto._paillier_pool import prestart, set_precompute, set_workers, shutdown_pools
from jointly.crypto._paillier_vector import EncryptedVector, WireCiphertexts, _objarray
from jointly.crypto.encoding import DEFAULT_FRAC_BITS, FixedPoint, as_int_array
from jointly.errors import ConfigError, KeyMismatch, ProtocolViolation

__all__ = [
    "ALLOWED_KEY_BITS",
    "DEFAULT_KEY_BITS",
    "PAILLIER",
    "EncryptedVector",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "WireCiphertexts",
    "generate_paillier_keypair",
    "prestart",
    "set_precompute",
    "set_workers",
    "shutdown_pools",
]

DEFAULT_KEY_BITS = 2048  #: ~112-bit security (NIST SP 800-57 Part 1 Rev. 5, table 2)
ALLOWED_KEY_BITS = (2048, 3072, 4096)
_MIN_UNSAFE_BITS = 128  # below this the sign/overflow bands and fixed point stop making sense
_MAX_BITS = 8192

_mpz = gmpy2.mpz
_MPZ_TYPE = type(_mpz(0))
_ONE = _mpz(1)

# estimated 4096-bit mulmods per element, for the in-process / pool decision
_ENCRYPT_UNITS = 140
_DECRYPT_UNITS = 600


def _check_bits(bits: int, allow_unsafe_key_size: bool) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ConfigError(f"key size must be an integer, got {bits!r}")
    if bits in ALLOWED_KEY_BITS:
        return
    if allow_unsafe_key_size and _MIN_UNSAFE_BITS <= bits <= _MAX_BITS and bits % 16 == 0:
        return
    if bits < DEFAULT_KEY_BITS and not allow_unsafe_key_size:
        raise ConfigError(f"a {bits}-bit Paillier key is unsafe; use 2048 or more (or allow_unsafe_key_size=True)")
    raise ConfigError(f"unsupported Paillier key size {bits}; choose one of {ALLOWED_KEY_BITS}")


# -- keys --------------------------------------------------------------------------------------
def _random_prime(bits: int) -> Any:
    while True:
        # top two bits set: the product of two such primes has exactly 2 * bits bits
        cand = _mpz(secrets.randbits(bits)) | (3 << (bits - 2)) | 1
        p = gmpy2.next_prime(cand)
        if p.bit_length() == bits and gmpy2.is_bpsw_prp(p):
            return p


def generate_paillier_keypair(
    bits: int = DEFAULT_KEY_BITS, *, allow_unsafe_key_size: bool = False
) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A fresh key pair with an ``n`` of exactly ``bits`` bits (primes from ``secrets`` + ``next_prime``).

    ``bits`` is 2048 (default), 3072 or 4096; smaller keys (multiples of 16, for
    tests) only with ``allow_unsafe_key_size=True``, else :class:`ConfigError`.
    """
    _check_bits(bits, allow_unsafe_key_size)
    half = bits // 2
    while True:
        p = _random_prime(half)
        q = _random_prime(half)
        if p == q:
            continue
        n = p * q
        if n.bit_length() == bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    public = PaillierPublicKey(int(n), _allow_unsafe=allow_unsafe_key_size)
    return public, PaillierPrivateKey(public, int(p), int(q))


class PaillierPublicKey:
    """The public half: encrypts and defines the ciphertext space ``Z_{n^2}``.

    Safe to share; :meth:`to_wire` / :meth:`from_wire` move it between parties.
    """

    __slots__ = ("_n", "_n2", "_rkey", "bits", "fingerprint", "max_int", "n", "nsquare")

    def __init__(self, n: int, *, _allow_unsafe: bool = False) -> None:
        n = int(n)
        bits = n.bit_length()
        _check_bits(bits, _allow_unsafe)
        if n % 2 == 0 or gmpy2.is_square(n) or gmpy2.is_prime(n):
            raise ConfigError("n is not a product of two distinct odd primes")
        self.n = n
        self.nsquare = n * n
        self.bits = bits
        self.max_int = n // 3
        self.fingerprint = hashlib.sha256(n.to_bytes((bits + 7) // 8, "big")).digest()
        self._n = _mpz(n)
        self._n2 = _mpz(self.nsquare)
        self._rkey: eng.RandomiserKey = (b"pub", n.to_bytes((bits + 7) // 8, "big"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaillierPublicKey) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"PaillierPublicKey(bits={self.bits}, fingerprint={self.fingerprint[:6].hex()})"

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one ciphertext on the wire (fixed width: ``2 * bits / 8``)."""
        return (2 * self.bits + 7) // 8

    # -- encryption ----------------------------------------------------------------------------
    def encrypt(self, values: ArrayLike, *, frac_bits: int = DEFAULT_FRAC_BITS) -> EncryptedVector:
        """Encrypt reals (or ints) as fixed point with ``frac_bits`` fractional bits."""
        ints = FixedPoint(frac_bits).encode(values).reshape(-1)
        return _encrypt(self, self._rkey, ints, frac_bits)

    def encrypt_ints(self, values: ArrayLike) -> EncryptedVector:
        """Encrypt exact signed integers (``frac_bits = 0``)."""
        return _encrypt(self, self._rkey, as_int_array(values).reshape(-1), 0)

    def _reduced(self, ints: np.ndarray) -> list[int]:
        """Plaintexts mod ``n`` after the range check (:class:`OverflowError` beyond ``max_int``)."""
        vals = ints.tolist()
        if vals:
            lim = self.max_int
            if max(vals) > lim or min(vals) < -lim:
                raise OverflowError(f"a plaintext is outside [-max_int, max_int] for a {self.bits}-bit key")
        n = self.n
        return [v % n for v in vals]

    def _randomisers(self, count: int) -> list[Any]:
        """``count`` fresh randomisers (encryptions of 0)."""
        return runner.randomisers(self._rkey, count, self.ciphertext_bytes, self.bits)

    def warm_up(self, count: int, *, timeout: float | None = None) -> int:
        """Ask the background pool to hold ``count`` randomisers ready and wait for it; returns how many are ready.

        Optional: encryption works without it.  Useful before a burst of
        encryptions (and in benchmarks); bounded by :func:`set_precompute`.
        """
        return _warm(self._rkey, self.ciphertext_bytes, count, timeout)

    # -- wire ----------------------------------------------------------------------------------
    def to_wire(self) -> dict[str, object]:
        """``{"scheme": "paillier", "n": n}``: everything a peer needs to encrypt and compute."""
        return {"scheme": "paillier", "n": self.n}

    @classmethod
    def from_wire(cls, obj: object, *, allow_unsafe_key_size: bool = False) -> PaillierPublicKey:
        """Rebuild a peer's key; raises :class:`ProtocolViolation` if it is malformed or too small.

        Keys below 2048 bits are refused unless ``allow_unsafe_key_size`` (tests only).
        """
        if not isinstance(obj, dict) or obj.get("scheme") != "paillier" or set(obj) != {"scheme", "n"}:
            raise ProtocolViolation("expected a Paillier public key {'scheme': 'paillier', 'n': int}")
        n = obj["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ProtocolViolation("Paillier modulus must be a positive integer")
        try:
            return cls(n, _allow_unsafe=allow_unsafe_key_size)
        except ConfigError as exc:
            raise ProtocolViolation(f"peer's Paillier key is not acceptable: {exc}") from exc


def _warm(key: eng.RandomiserKey, width: int, count: int, timeout: float | None) -> int:
    pool = runner.obfuscation_pool(key, width)
    if pool is None or count <= 0:
        return 0
    return pool.warm(count, timeout)


def _encrypt(pk: PaillierPublicKey, key: eng.RandomiserKey, ints: np.ndarray, frac_bits: int) -> EncryptedVector:
    """Encrypt encoded plaintexts with randomisers for ``key`` (public, or the owner's CRT key)."""
    ms = pk._reduced(ints)
    size, width = len(ms), pk.ciphertext_bytes
    obf = runner.obfuscation_pool(key, width)
    ready = obf.take(size) if obf is not None else []
    done = len(ready)
    n_workers = runner.parallel_workers((size - done) * _ENCRYPT_UNITS, pk.bits) if size > done else 1
    if n_workers == 1:
        rs = ready + eng.local_source(key).make(size - done)
        return EncryptedVector(pk, _objarray(eng.encrypt_with(pk._n, pk._n2, ms, rs)), frac_bits)
    m_width = (pk.bits + 7) // 8
    rest = ms[done:]
    chunks = runner.ChunkRunner(
        n_workers,
        eng.w_encrypt,
        (
            (key, eng.ints_to_blob(rest[lo:hi], m_width), m_width, width)
            for lo, hi in runner.chunk_bounds(len(rest), n_workers, max_chunk=runner.max_chunk_rows(width))
        ),
    )
    rows = np.empty((size, width), dtype=np.uint8)  # filled in place: no second copy of a long vector
    if done:
        rows[:done] = eng.to_rows(eng.encrypt_with(pk._n, pk._n2, ms[:done], ready), width)  # while workers run
    del ready
    at = done
    for blob in chunks:
        part = np.frombuffer(blob, dtype=np.uint8).reshape(-1, width)
        rows[at : at + len(part)] = part
        at += len(part)
    return EncryptedVector._from_rows(pk, rows, None, frac_bits)


class PaillierPrivateKey:
    """The key owner's secret ``(p, q)``: decrypts with the CRT and encrypts faster than the public key.

    Never serialised by :meth:`PaillierPublicKey.to_wire`; cannot be pickled;
    :meth:`to_private_dict` exists only for the owner's own storage.  ``p`` and
    ``q`` are handed (as bytes) to this machine's own worker processes only.
    """

    __slots__ = ("__weakref__", "_p", "_pb", "_q", "_qb", "_rkey", "public_key")

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        if p * q != public_key.n or p == q or p < 3 or q < 3:
            raise ConfigError("p and q do not factor the public key's n")
        if p > q:
            p, q = q, p
        self.public_key = public_key
        self._p, self._q = _mpz(p), _mpz(q)
        width = (max(p, q).bit_length() + 7) // 8
        self._pb, self._qb = p.to_bytes(width, "big"), q.to_bytes(width, "big")
        self._rkey: eng.RandomiserKey = (b"crt", self._pb, self._qb)
        # CRT tables and precomputed randomisers reveal p and q: drop them with the key
        weakref.finalize(self, runner.forget, self._rkey)

    def __repr__(self) -> str:
        return f"PaillierPrivateKey(<secret>, public_key={self.public_key!r})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("PaillierPrivateKey holds a secret and cannot be pickled")

    def to_private_dict(self) -> dict[str, object]:
        """The secret key as a plain dict, **for the owner's own disk only** (never send it)."""
        return {"scheme": "paillier-private", "n": self.public_key.n, "p": int(self._p), "q": int(self._q)}

    @classmethod
    def from_private_dict(cls, obj: object, *, allow_unsafe_key_size: bool = False) -> PaillierPrivateKey:
        """Inverse of :meth:`to_private_dict`; checks that ``p q = n``."""
        if not isinstance(obj, dict) or obj.get("scheme") != "paillier-private":
            raise ConfigError("not a stored Paillier private key")
        n, p, q = obj.get("n"), obj.get("p"), obj.get("q")
        if not (isinstance(n, int) and isinstance(p, int) and isinstance(q, int)):
            raise ConfigError("stored Paillier private key has non-integer fields")
        public = PaillierPublicKey(n, _allow_unsafe=allow_unsafe_key_size)
        return cls(public, p, q)

    # -- decryption ----------------------------------------------------------------------------
    def _raw(self, ev: EncryptedVector) -> list[Any]:
        if not isinstance(ev, EncryptedVector):
            raise TypeError(f"expected an EncryptedVector, got {type(ev).__name__}")
        if ev.public_key != self.public_key:
            raise KeyMismatch("the vector was encrypted under a different Paillier key")
        size = len(ev)
        n_workers = runner.parallel_workers(size * _DECRYPT_UNITS, self.public_key.bits)
        if n_workers == 1:
            return eng.decrypt_crt(self._p, self._q, ev._cipher_list())
        width = self.public_key.ciphertext_bytes
        bounds = runner.chunk_bounds(size, n_workers, max_chunk=runner.max_chunk_rows(width))
        jobs = ((self._pb, self._qb, blob, width, idx) for _lo, _hi, blob, idx in runner.operand_chunks(ev, bounds))
        m_width = (self.public_key.bits + 7) // 8
        out: list[Any] = []
        for blob in runner.run_chunks(n_workers, eng.w_decrypt, jobs):
            out.extend(eng.blob_to_ints(blob, m_width))
        return out

    def decrypt_ints(self, ev: EncryptedVector) -> np.ndarray:
        """The signed integer plaintexts (object array of Python ints), ignoring ``frac_bits``.

        Raises :class:`OverflowError` for a plaintext in the middle band (an overflowed result).
        """
        n = self.public_key.n
        lim = self.public_key.max_int
        neg = n - lim
        out = np.empty(len(ev), dtype=object)
        vals = []
        for m in self._raw(ev):
            v = int(m)
            if v <= lim:
                vals.append(v)
            elif v >= neg:
                vals.append(v - n)
            else:
                raise OverflowError("a decrypted value is outside [-max_int, max_int]: the computation overflowed")
        out[:] = vals
        return out

    def decrypt(self, ev: EncryptedVector) -> np.ndarray:
        """The plaintexts as float64, decoded with the vector's ``frac_bits``."""
        return FixedPoint(0).decode(self.decrypt_ints(ev), frac_bits=ev.frac_bits)

    # -- encryption by the key owner -----------------------------------------------------------
    def encrypt(self, values: ArrayLike, *, frac_bits: int = DEFAULT_FRAC_BITS) -> EncryptedVector:
        """Same ciphertexts as :meth:`PaillierPublicKey.encrypt`, faster: randomisers computed mod ``p^2``, ``q^2``."""
        ints = FixedPoint(frac_bits).encode(values).reshape(-1)
        return _encrypt(self.public_key, self._rkey, ints, frac_bits)

    def encrypt_ints(self, values: ArrayLike) -> EncryptedVector:
        """Same as :meth:`PaillierPublicKey.encrypt_ints`, faster (CRT randomisers)."""
        return _encrypt(self.public_key, self._rkey, as_int_array(values).reshape(-1), 0)

    def warm_up(self, count: int, *, timeout: float | None = None) -> int:
        """Like :meth:`PaillierPublicKey.warm_up`, for the owner's CRT randomisers."""
        return _warm(self._rkey, self.public_key.ciphertext_bytes, count, timeout)


class PaillierScheme:
    """Paillier as an :class:`jointly.crypto.he.AdditiveHE` (the seam for a second scheme)."""

    name = "paillier"

    def generate_keypair(
        self, bits: int = DEFAULT_KEY_BITS, *, allow_unsafe_key_size: bool = False
    ) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
        return generate_paillier_keypair(bits, allow_unsafe_key_size=allow_unsafe_key_size)

    def public_key_from_wire(self, obj: object, *, allow_unsafe_key_size: bool = False) -> PaillierPublicKey:
        return PaillierPublicKey.from_wire(obj, allow_unsafe_key_size=allow_unsafe_key_size)

    def vector_from_wire(self, public_key: PaillierPublicKey, msg: object) -> EncryptedVector:
        return EncryptedVector.from_wire(public_key, msg)

    def concat(self, parts: Sequence[EncryptedVector]) -> EncryptedVector:
        return EncryptedVector.concat(parts)


PAILLIER = PaillierScheme()  #: the Paillier scheme object

if TYPE_CHECKING:  # mypy proves that Paillier fits the seam
    from jointly.crypto.he import AdditiveHE

    _SEAM: AdditiveHE[PaillierPublicKey, PaillierPrivateKey, EncryptedVector] = PAILLIER
