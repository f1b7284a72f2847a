"""Configuration, wire messages, fixed-point ring encoding and key derivation shared by both sides of SecAgg."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from jointly.channel.codec import encode, message
from jointly.errors import ConfigError, DataError, ProtocolAborted, ProtocolViolation

_M = TypeVar("_M")

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_INFO_ENC = b"jointly.secagg.v1/share-encryption"
_INFO_MASK = b"jointly.secagg.v1/pairwise-mask"


@dataclass(frozen=True)
class SecAggConfig:
    """Parameters every party of one secure aggregation must agree on.

    ``threshold``: how many clients must survive to the end; it is also the Shamir
    threshold, so ``threshold - 1`` colluding clients learn nothing about anyone's
    masks.  Against a server that may lie about who dropped, use ``threshold > n/2``.

    Encoding: each coordinate is clipped to ``[-clip, clip]``, multiplied by the
    client's ``num_examples`` when ``weighted``, scaled by ``2**frac_bits``, rounded
    and taken modulo ``2**modulus_bits``; one extra coordinate carries
    ``num_examples`` itself.  Rounding error per client and coordinate is at most
    ``2**-(frac_bits+1)``.  The sum is exact as long as
    ``n * w * clip * 2**frac_bits + n < 2**(modulus_bits-1)`` with ``w = max_examples``
    (weighted) or 1, see :meth:`check_capacity`.

    ``timeout``: how long the server waits, per stage, before it counts the
    clients that did not answer as dropped.  ``client_timeout``: how long a client
    waits for the server.
    """

    threshold: int
    clip: float = 10.0
    frac_bits: int = 16
    modulus_bits: int = 64
    max_examples: int = 1 << 20
    weighted: bool = True
    timeout: float = 60.0
    client_timeout: float = 600.0

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 2:
            raise ConfigError(f"threshold must be an integer >= 2, got {self.threshold!r}")
        if not (isinstance(self.clip, int | float) and math.isfinite(self.clip) and self.clip > 0):
            raise ConfigError(f"clip must be a positive number, got {self.clip!r}")
        if self.modulus_bits not in (32, 64):
            raise ConfigError(f"modulus_bits must be 32 or 64, got {self.modulus_bits!r}")
        if not isinstance(self.frac_bits, int) or not 0 <= self.frac_bits < self.modulus_bits - 1:
            raise ConfigError(f"frac_bits must be an integer in [0, {self.modulus_bits - 1}), got {self.frac_bits!r}")
        if not isinstance(self.max_examples, int) or self.max_examples < 1:
            raise ConfigError(f"max_examples must be a positive integer, got {self.max_examples!r}")
        if not (self.timeout > 0 and self.client_timeout > 0):
            raise ConfigError("timeouts must be positive")

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        return np.dtype(np.uint64 if self.modulus_bits == 64 else np.uint32)

    def check_capacity(self, n_clients: int) -> None:
        """Raise :class:`ConfigError` if the sum of ``n_clients`` inputs could wrap around the ring."""
        if n_clients < self.threshold:
            raise ConfigError(f"{n_clients} clients cannot meet the threshold of {self.threshold}")
        weight = self.max_examples if self.weighted else 1
        bound = n_clients * (weight * self.clip * 2.0**self.frac_bits + 1)
        limit = 2.0 ** (self.modulus_bits - 1)
        if bound >= limit or n_clients * self.max_examples >= limit:
            raise ConfigError(
                f"{n_clients} clients x clip {self.clip} x weight {weight} x 2**{self.frac_bits} can overflow "
                f"a {self.modulus_bits}-bit ring: lower clip, frac_bits or max_examples, or use modulus_bits=64"
            )

    def fingerprint(self) -> bytes:
        fields = [VERSION, self.threshold, float(self.clip), self.frac_bits, self.modulus_bits]
        return hashlib.sha256(encode([*fields, self.max_examples, self.weighted])).digest()


@dataclass(frozen=True)
class SecAggResult:
    """What the server learns: the sum over ``survivors`` and nothing about any single input.

    ``sum``: per-array sums of the (clipped, weighted if configured) updates;
    ``total_examples``: the sum of the survivors' ``num_examples``.
    """

    sum: list[np.ndarray]
    total_examples: int
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]

    def mean(self) -> list[np.ndarray]:
        """``sum / total_examples``: the weighted average when the config is ``weighted``."""
        if self.total_examples <= 0:
            raise ConfigError("no examples were aggregated")
        return [a / self.total_examples for a in self.sum]


# -- wire messages ---------------------------------------------------------------------------------


@message("jointly.secagg.AdvertiseKeys")
@dataclass(frozen=True)
class AdvertiseKeys:
    """Client -> server: the public keys for share encryption (``c_pk``) and pairwise masks (``s_pk``)."""

    c_pk: bytes
    s_pk: bytes
    config: bytes


@message("jointly.secagg.Roster")
@dataclass(frozen=True)
class Roster:
    """Server -> clients: every client that advertised keys, in job order, and the vector length."""

    clients: list[str]
    c_pks: list[bytes]
    s_pks: list[bytes]
    length: int


@message("jointly.secagg.SealedShares")
@dataclass(frozen=True)
class SealedShares:
    """Client -> server -> client: AES-GCM ciphertexts of Shamir shares, keyed by the other client's name."""

    ciphertexts: dict[str, bytes]


@message("jointly.secagg.MaskedInput")
@dataclass(frozen=True)
class MaskedInput:
    """Client -> server: the encoded update plus the self mask and the pairwise masks."""

    vector: np.ndarray


@message("jointly.secagg.UnmaskRequest")
@dataclass(frozen=True)
class UnmaskRequest:
    """Server -> surviving clients: who sent a masked input (``survivors``) and who shared keys but did not."""

    survivors: list[str]
    dropped: list[str]


@message("jointly.secagg.UnmaskShares")
@dataclass(frozen=True)
class UnmaskShares:
    """Surviving client -> server: shares of survivors' self-mask seeds and of dropped clients' mask keys."""

    self_seed: dict[str, bytes]
    mask_key: dict[str, bytes]


def expect(value: object, cls: type[_M], sender: str) -> _M:
    """``value`` if it is a ``cls`` message, else :class:`ProtocolViolation` naming ``sender``."""
    if not isinstance(value, cls):
        raise ProtocolViolation(f"{sender!r} sent {type(value).__name__}, expected {cls.__name__}")
    return value


# -- encoding --------------------------------------------------------------------------------------


def vector_length(shapes: Sequence[tuple[int, ...]]) -> int:
    """Coordinates of the masked vector: every parameter plus one for ``num_examples``."""
    return sum(math.prod(s) for s in shapes) + 1


def encode_update(update: Sequence[np.ndarray], *, num_examples: int, config: SecAggConfig) -> np.ndarray:
    """The update as a vector over Z_(2**modulus_bits): clipped, weighted, fixed point, ``num_examples`` last."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, int):
        raise ConfigError(f"num_examples must be an integer, got {num_examples!r}")
    if not 1 <= num_examples <= config.max_examples:
        raise ConfigError(f"num_examples must be in [1, {config.max_examples}], got {num_examples}")
    parts = [np.asarray(a).reshape(-1) for a in update]
    if any(p.dtype.kind not in "fiub" for p in parts):
        raise DataError("update", "holds non-numeric arrays")
    flat = np.concatenate(parts).astype(np.float64, copy=False) if parts else np.zeros(0)  # a fresh array
    if not np.isfinite(flat).all():
        raise DataError("update", "contains NaN or infinite values")
    np.clip(flat, -config.clip, config.clip, out=flat)
    flat *= math.ldexp(num_examples if config.weighted else 1, config.frac_bits)  # exact: times 2**frac_bits
    np.rint(flat, out=flat)
    ints = np.empty(flat.size + 1, dtype=np.int64)
    ints[:-1] = flat
    ints[-1] = num_examples
    if config.modulus_bits == 64:
        return ints.view(np.uint64)  # two's complement: negatives wrap modulo 2**64
    return ints.astype(config.dtype)  # modulo 2**32


def decode_sum(
    vector: np.ndarray, shapes: Sequence[tuple[int, ...]], config: SecAggConfig
) -> tuple[list[np.ndarray], int]:
    """Inverse of the sum of :func:`encode_update`: per-array float64 sums and the total of ``num_examples``."""
    signed = vector.view(np.int64 if config.modulus_bits == 64 else np.int32)
    values = np.ldexp(signed[:-1].astype(np.float64), -config.frac_bits)
    arrays, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        arrays.append(values[start : start + size].reshape(shape))
        start += size
    return arrays, int(signed[-1])


# -- keys, masks and share encryption ---------------------------------------------------------------


def prg(seed: bytes, length: int, dtype: np.dtype) -> np.ndarray:
    """``length`` pseudo-random ring elements: the AES-256-CTR keystream of ``seed`` (zero IV), little-endian."""
    return MaskExpander(length, dtype).stream(seed).astype(dtype)  # a copy, in native byte order


class MaskExpander:
    """Adds keystreams of :func:`prg` into ring vectors of one length, through one reused buffer.

    ``add(y, seed)`` is ``y += prg(seed, ...)`` (modulo the ring) without a fresh buffer per mask: a new
    buffer of a model's size costs as much in page faults and zeroing as the encryption itself.
    """

    def __init__(self, length: int, dtype: np.dtype) -> None:
        self.length, self.dtype = int(length), np.dtype(dtype)
        size = self.length * self.dtype.itemsize
        self._zeros = bytes(size)
        self._buf = bytearray(size + 15)  # update_into wants room for a block beyond the input
        self._view = np.frombuffer(self._buf, dtype=self.dtype.newbyteorder("<"), count=self.length)

    def stream(self, seed: bytes) -> np.ndarray:
        """The keystream of ``seed`` as ring elements; a view that the next call overwrites."""
        if len(seed) != KEY_BYTES:
            raise ProtocolViolation("a mask seed must be 32 bytes")
        encryptor = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor()
        encryptor.update_into(self._zeros, self._buf)
        encryptor.finalize()
        return self._view

    def add(self, target: np.ndarray, seed: bytes) -> None:
        """``target += prg(seed)`` in place (wrapping modulo the ring)."""
        np.add(target, self.stream(seed), out=target)

    def subtract(self, target: np.ndarray, seed: bytes) -> None:
        """``target -= prg(seed)`` in place (wrapping modulo the ring)."""
        np.subtract(target, self.stream(seed), out=target)


def session_id(roster: Roster, config: SecAggConfig) -> bytes:
    """Binds every derived key to this roster (names, public keys) and configuration."""
    return hashlib.sha256(encode([VERSION, roster.clients, roster.c_pks, roster.s_pks, config.fingerprint()])).digest()


def agree(private: X25519PrivateKey, peer_public: bytes, *, session: bytes, info: bytes, peer: str) -> bytes:
    """HKDF-SHA256 over the full X25519 shared secret, salted with the session id."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # malformed or low-order public key
        raise ProtocolViolation(f"{peer!r} published an unusable X25519 key: {exc}") from exc
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=session, info=info).derive(shared)


def mask_seed(private: X25519PrivateKey, peer_public: bytes, *, session: bytes, peer: str) -> bytes:
    return agree(private, peer_public, session=session, info=_INFO_MASK, peer=peer)


def _aad(session: bytes, sender: str, recipient: str) -> bytes:
    return encode([VERSION, session, sender, recipient])


def seal(key: bytes, plaintext: bytes, *, session: bytes, sender: str, recipient: str) -> bytes:
    """AES-256-GCM with a random nonce; the session and both names are authenticated."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(session, sender, recipient))


def open_sealed(key: bytes, data: bytes, *, session: bytes, sender: str, recipient: str) -> bytes:
    if not isinstance(data, bytes) or len(data) < NONCE_BYTES + 16:
        raise ProtocolViolation(f"share ciphertext from {sender!r} is malformed")
    try:
        return AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(session, sender, recipient))
    except InvalidTag as exc:
        raise ProtocolViolation(f"share ciphertext from {sender!r} to {recipient!r} failed authentication") from exc


def share_key(private: X25519PrivateKey, peer_public: bytes, *, session: bytes, peer: str) -> bytes:
    return agree(private, peer_public, session=session, info=_INFO_ENC, peer=peer)


def require(have: int, threshold: int, *, party: str, stage: str, what: str) -> None:
    """Abort when fewer than ``threshold`` clients are left: the sum could not be unmasked safely."""
    if have < threshold:
        raise ProtocolAborted(party, stage, f"only {have} clients {what}; the threshold is {threshold}")
