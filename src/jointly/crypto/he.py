"""The seam for additively homomorphic schemes: what vertical learning needs from one.

Paillier (:data:`jointly.crypto.paillier.PAILLIER`) satisfies :class:`AdditiveHE`;
a second scheme (e.g. Okamoto–Uchiyama, smaller ciphertexts) can be added behind
the same interface, and protocols that take an ``AdditiveHE`` need not change.

The contract every scheme keeps:

* plaintexts are signed integers ``|m| <= max_int``; reals are fixed point
  (:mod:`jointly.crypto.encoding`) and every vector carries its ``frac_bits``;
* encryption is randomised; homomorphic results are not rerandomised
  (``rerandomize`` does that);
* combining vectors under different keys raises :class:`~jointly.errors.KeyMismatch`,
  ``bool(vector)`` raises ``TypeError``, results outside the plaintext range
  raise ``OverflowError`` on decryption;
* ``to_wire``/``from_wire`` go through :mod:`jointly.channel.codec` and validate
  everything a peer sent (:class:`~jointly.errors.ProtocolViolation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["AdditiveHE", "HEPrivateKey", "HEPublicKey", "HEVector"]

_V = TypeVar("_V", bound="HEVector")
_V_co = TypeVar("_V_co", bound="HEVector", covariant=True)
_PK = TypeVar("_PK", bound="HEPublicKey[Any]")
_SK_co = TypeVar("_SK_co", bound="HEPrivateKey[Any]", covariant=True)


@runtime_checkable
class HEVector(Protocol):
    """A vector of ciphertexts under one key."""

    frac_bits: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> Self: ...

    def take(self, indices: ArrayLike) -> Self: ...

    def __add__(self, other: object) -> Self: ...

    def __radd__(self, other: object) -> Self: ...

    def __sub__(self, other: object) -> Self: ...

    def __rsub__(self, other: object) -> Self: ...

    def __neg__(self) -> Self: ...

    def __mul__(self, other: object) -> Self: ...

    def __rmul__(self, other: object) -> Self: ...

    def sum(self) -> Self: ...

    def segment_sum(self, segment_ids: ArrayLike, n_segments: int) -> Self: ...

    def dot(self, matrix: ArrayLike) -> Self: ...

    def pack_slots(self, slot_bits: int, per: int) -> Self: ...

    def rerandomize(self) -> Self: ...

    def to_wire(self) -> Any: ...


@runtime_checkable
class HEPublicKey(Protocol[_V_co]):
    """Encrypts; safe to share."""

    @property
    def bits(self) -> int: ...

    @property
    def max_int(self) -> int: ...

    @property
    def fingerprint(self) -> bytes: ...

    def encrypt(self, values: ArrayLike, *, frac_bits: int = ...) -> _V_co: ...

    def encrypt_ints(self, values: ArrayLike) -> _V_co: ...

    def to_wire(self) -> dict[str, object]: ...


@runtime_checkable
class HEPrivateKey(Protocol[_V]):
    """Decrypts (and may encrypt faster than the public key)."""

    def decrypt(self, ev: _V) -> np.ndarray: ...

    def decrypt_ints(self, ev: _V) -> np.ndarray: ...

    def encrypt(self, values: ArrayLike, *, frac_bits: int = ...) -> _V: ...

    def encrypt_ints(self, values: ArrayLike) -> _V: ...


@runtime_checkable
class AdditiveHE(Protocol[_PK, _SK_co, _V]):
    """A scheme: key generation and rebuilding a peer's key and vectors from the wire."""

    @property
    def name(self) -> str: ...

    def generate_keypair(self, bits: int, *, allow_unsafe_key_size: bool = False) -> tuple[_PK, _SK_co]: ...

    def public_key_from_wire(self, obj: object, *, allow_unsafe_key_size: bool = False) -> _PK: ...

    def vector_from_wire(self, public_key: _PK, msg: object) -> _V: ...

    def concat(self, parts: Sequence[_V]) -> _V: ...
