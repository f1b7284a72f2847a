"""Shamir t-of-n secret sharing over the prime field GF(p), p = 2**256 + 297.

A secret ``s`` becomes the constant term of a random polynomial ``f`` of degree
``t - 1``; party ``i`` receives the point ``(x_i, f(x_i))``.  Any ``t`` points give
``s = f(0)`` back by Lagrange interpolation; any ``t - 1`` of them are uniformly
distributed and independent of ``s`` (perfect secrecy).

Vectorised in the one way secure aggregation needs: :func:`split` shares several
secrets at once with independent polynomials, so one :class:`Share` carries one
point per secret, all at the same ``x``.  Any 32-byte string is a field element
(``p > 2**256``), so keys and seeds are shared as they are.

Randomness comes from the operating system (:mod:`secrets`); there is no seedable
path on purpose.  Value code only: no I/O.  Shares are not authenticated: a
wrong share gives a wrong secret, so callers check the result where they can
(secure aggregation compares a rebuilt private key with its public key).
"""

from __future__ import annotations

import secrets as _secrets
from collections.abc import Sequence
from dataclasses import dataclass

import gmpy2

from jointly.errors import ConfigError

__all__ = ["PRIME", "SECRET_BYTES", "Share", "reconstruct", "split", "to_bytes"]

PRIME = (1 << 256) + 297  #: the smallest prime above 2**256
SECRET_BYTES = 32  #: any secret of up to this many bytes is a field element
_ELEMENT_BYTES = 33  # a field element on the wire
_X_BYTES = 4
MAX_SHARES = (1 << 32) - 1


@dataclass(frozen=True)
class Share:
    """One party's point: ``x`` and ``f_k(x)`` for each shared secret ``k``."""

    x: int
    y: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.x, bool) or not isinstance(self.x, int) or not 1 <= self.x <= MAX_SHARES:
            raise ConfigError(f"share x must be an integer in [1, {MAX_SHARES}], got {self.x!r}")
        if not self.y or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < PRIME for v in self.y):
            raise ConfigError("share values must be a non-empty tuple of field elements")

    def to_bytes(self) -> bytes:
        """``x`` (4 bytes) then each value (33 bytes), big-endian."""
        return self.x.to_bytes(_X_BYTES, "big") + b"".join(v.to_bytes(_ELEMENT_BYTES, "big") for v in self.y)

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Inverse of :meth:`to_bytes`; raises :class:`ConfigError` on malformed input."""
        body = len(data) - _X_BYTES
        if body <= 0 or body % _ELEMENT_BYTES:
            raise ConfigError(f"a share of {len(data)} bytes is malformed")
        x = int.from_bytes(data[:_X_BYTES], "big")
        y = tuple(
            int.from_bytes(data[i : i + _ELEMENT_BYTES], "big") for i in range(_X_BYTES, len(data), _ELEMENT_BYTES)
        )
        return cls(x, y)

    def only(self, k: int) -> Share:
        """This point restricted to secret ``k`` (reveal one secret's share, not the others)."""
        return Share(self.x, (self.y[k],))

    def __repr__(self) -> str:  # never print share values into logs
        return f"Share(x={self.x}, secrets={len(self.y)})"


def _check_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(f"threshold must be a positive integer, got {threshold!r}")


def _as_element(secret: int | bytes) -> int:
    if isinstance(secret, bytes):
        if len(secret) > SECRET_BYTES:
            raise ConfigError(f"a secret of {len(secret)} bytes is over {SECRET_BYTES}")
        return int.from_bytes(secret, "big")
    if isinstance(secret, bool) or not isinstance(secret, int) or not 0 <= secret < PRIME:
        raise ConfigError("a secret must be bytes or an integer in [0, PRIME)")
    return secret


def split(secrets: Sequence[int | bytes], threshold: int, xs: Sequence[int]) -> list[Share]:
    """Share every secret ``t``-of-``len(xs)``: one :class:`Share` per ``x`` in ``xs``, in order.

    ``xs`` are the parties' distinct non-zero evaluation points (1..n is usual).
    Bytes secrets are read big-endian; get them back with :func:`to_bytes`.
    """
    _check_threshold(threshold)
    points = list(xs)
    if len(set(points)) != len(points):
        raise ConfigError("share points x must be distinct")
    if threshold > len(points):
        raise ConfigError(f"threshold {threshold} is more than the {len(points)} shares")
    if not secrets:
        raise ConfigError("nothing to share")
    values = [_as_element(s) for s in secrets]
    p = gmpy2.mpz(PRIME)
    polys = [[gmpy2.mpz(v)] + [gmpy2.mpz(_secrets.randbelow(PRIME)) for _ in range(threshold - 1)] for v in values]
    shares = []
    for x in points:
        if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= MAX_SHARES:
            raise ConfigError(f"share x must be an integer in [1, {MAX_SHARES}], got {x!r}")
        gx = gmpy2.mpz(x)
        ys = []
        for coeffs in polys:
            acc = gmpy2.mpz(0)
            for c in reversed(coeffs):  # Horner
                acc = (acc * gx + c) % p
            ys.append(int(acc))
        shares.append(Share(x, tuple(ys)))
    return shares


def reconstruct(shares: Sequence[Share], threshold: int) -> list[int]:
    """The secrets ``f_k(0)`` from the first ``threshold`` shares (Lagrange interpolation at 0).

    Refuses fewer than ``threshold`` shares, repeated ``x`` and shares carrying
    different numbers of secrets (:class:`ConfigError`).
    """
    _check_threshold(threshold)
    if len(shares) < threshold:
        raise ConfigError(f"{len(shares)} shares cannot rebuild a secret shared with threshold {threshold}")
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise ConfigError("shares with the same x cannot be combined")
    used = shares[:threshold]
    width = len(used[0].y)
    if any(len(s.y) != width for s in shares):
        raise ConfigError("shares carry different numbers of secrets")
    p = gmpy2.mpz(PRIME)
    gxs = [gmpy2.mpz(s.x) for s in used]
    weights = []
    for i, xi in enumerate(gxs):
        num, den = gmpy2.mpz(1), gmpy2.mpz(1)
        for j, xj in enumerate(gxs):
            if j != i:
                num = num * xj % p
                den = den * (xj - xi) % p
        weights.append(num * gmpy2.invert(den, p) % p)
    out = []
    for k in range(width):
        acc = gmpy2.mpz(0)
        for w, s in zip(weights, used, strict=True):
            acc = (acc + w * s.y[k]) % p
        out.append(int(acc))
    return out


def to_bytes(value: int, length: int = SECRET_BYTES) -> bytes:
    """A rebuilt secret as ``length`` big-endian bytes; :class:`ConfigError` if it does not fit."""
    if not 0 <= value < (1 << (8 * length)):
        raise ConfigError(f"rebuilt value does not fit {length} bytes (wrong or tampered shares?)")
    return value.to_bytes(length, "big")
