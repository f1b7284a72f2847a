"""Signed tree heads and partners' cosignatures of them.

A :class:`TreeHead` ``(party, size, root, time)`` states "the first ``size``
entries of ``party``'s log have Merkle root ``root``" (RFC 9162 2.1); its owner
signs it (:class:`SignedTreeHead`), and every partner that replicates the log
and checked that the head extends the last one it held countersigns it
(:class:`Cosignature`).  Once a partner holds a cosigned head, the owner can no
longer alter, drop or reorder any of those ``size`` entries without the
difference showing against the partner's copy; and a partner cannot claim the
owner signed a head it did not (it has no owner key).

Encodings (version 1), each body the canonical JSON of :mod:`jointly.audit.codec`
with the root as lowercase hex:

* head body ``{"party", "root", "size", "time"}``; signed over
  ``b"jointly/ledger/head/v1\\0" || body``; stored as ``0x01 || signature || body``;
* cosignature body ``{"party", "root", "signer", "size", "time"}`` (``time`` is when
  the signer countersigned); signed by ``signer`` over
  ``b"jointly/ledger/cosign/v1\\0" || body``; stored as ``0x01 || signature || body``.

The domain prefixes keep an entry, a head and a cosignature signature from ever
standing in for one another.  Decoding a peer's bytes is strict (CodecError).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jointly.audit.codec import canonical_json, parse_canonical
from jointly.audit.merkle import HASH_BYTES
from jointly.crypto.signing import SIGNATURE_BYTES, SigningKey, VerifyKey
from jointly.errors import CodecError, ConfigError

HEAD_DOMAIN = b"jointly/ledger/head/v1\0"
COSIGN_DOMAIN = b"jointly/ledger/cosign/v1\0"
VERSION = 1
MAX_HEAD_BYTES = 1024
_MAX_NAME = 128
_MAX_SIZE = 2**63 - 1
_HEX = re.compile(r"^[0-9a-f]{64}$")
_T = TypeVar("_T")


@dataclass(frozen=True)
class TreeHead:
    """``party``'s log had ``size`` entries with Merkle root ``root`` at ``time`` (seconds since the epoch)."""

    party: str
    size: int
    root: bytes
    time: float

    def __post_init__(self) -> None:
        _check_name("party", self.party)
        _check_size(self.size)
        if not isinstance(self.root, bytes) or len(self.root) != HASH_BYTES:
            raise ConfigError(f"a tree root is {HASH_BYTES} bytes")
        object.__setattr__(self, "time", _check_time(self.time))

    def to_dict(self) -> dict[str, Any]:
        return {"party": self.party, "size": self.size, "root": self.root.hex(), "time": self.time}

    def encode(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes) -> TreeHead:
        obj = _parse(raw, "tree head", {"party", "root", "size", "time"})
        return _build("tree head", lambda: cls(obj["party"], obj["size"], _unhex(obj["root"]), obj["time"]))


@dataclass(frozen=True)
class SignedTreeHead:
    """A tree head with its owner's signature over the head's exact bytes."""

    head: TreeHead
    head_bytes: bytes
    signature: bytes

    @classmethod
    def sign(cls, head: TreeHead, key: SigningKey) -> SignedTreeHead:
        body = head.encode()
        return cls(head, body, key.sign(HEAD_DOMAIN + body))

    def verify(self, key: VerifyKey) -> None:
        """Return if ``key`` signed this head, else raise AuthenticationError."""
        key.verify(HEAD_DOMAIN + self.head_bytes, self.signature)

    def encode(self) -> bytes:
        return bytes([VERSION]) + self.signature + self.head_bytes

    @classmethod
    def decode(cls, raw: bytes) -> SignedTreeHead:
        """Strictly decode untrusted bytes (the signature is checked by :meth:`verify`)."""
        signature, body = _split(raw, "signed tree head")
        return cls(TreeHead.decode(body), body, signature)

    @property
    def party(self) -> str:
        return self.head.party

    @property
    def size(self) -> int:
        return self.head.size

    @property
    def root(self) -> bytes:
        return self.head.root


@dataclass(frozen=True)
class Cosignature:
    """``signer`` vouches that ``party``'s log had ``size`` entries with ``root`` and extends what it held before."""

    signer: str
    party: str
    size: int
    root: bytes
    time: float
    signature: bytes

    def __post_init__(self) -> None:
        _check_name("signer", self.signer)
        _check_name("party", self.party)
        _check_size(self.size)
        if not isinstance(self.root, bytes) or len(self.root) != HASH_BYTES:
            raise ConfigError(f"a tree root is {HASH_BYTES} bytes")
        object.__setattr__(self, "time", _check_time(self.time))
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
            raise ConfigError(f"a signature is {SIGNATURE_BYTES} bytes")

    @classmethod
    def sign(cls, head: TreeHead, *, signer: str, key: SigningKey, time: float) -> Cosignature:
        body = _cosign_body(signer, head.party, head.size, head.root, time)
        return cls(signer, head.party, head.size, head.root, float(time), key.sign(COSIGN_DOMAIN + body))

    def body(self) -> bytes:
        """The exact bytes the signer signed (after the domain prefix)."""
        return _cosign_body(self.signer, self.party, self.size, self.root, self.time)

    def verify(self, key: VerifyKey) -> None:
        """Return if ``key`` (the signer's) made this cosignature, else raise AuthenticationError."""
        key.verify(COSIGN_DOMAIN + self.body(), self.signature)

    def encode(self) -> bytes:
        return bytes([VERSION]) + self.signature + self.body()

    @classmethod
    def decode(cls, raw: bytes) -> Cosignature:
        signature, body = _split(raw, "cosignature")
        obj = _parse(body, "cosignature", {"party", "root", "signer", "size", "time"})
        return _build(
            "cosignature",
            lambda: cls(obj["signer"], obj["party"], obj["size"], _unhex(obj["root"]), obj["time"], signature),
        )

    def matches(self, head: TreeHead) -> bool:
        """Does this cosignature vouch for exactly ``head``'s log state (party, size, root)?"""
        return (self.party, self.size, self.root) == (head.party, head.size, head.root)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "party": self.party,
            "size": self.size,
            "root": self.root.hex(),
            "time": self.time,
        }


def _cosign_body(signer: str, party: str, size: int, root: bytes, time: float) -> bytes:
    return canonical_json({"signer": signer, "party": party, "size": size, "root": root.hex(), "time": float(time)})


def _split(raw: bytes, what: str) -> tuple[bytes, bytes]:
    if not isinstance(raw, bytes):
        raise CodecError(f"{what}: expected bytes, got {type(raw).__name__}")
    if len(raw) < 1 + SIGNATURE_BYTES or raw[0] != VERSION:
        raise CodecError(f"{what}: too short or unknown version")
    return raw[1 : 1 + SIGNATURE_BYTES], raw[1 + SIGNATURE_BYTES :]


def _parse(body: bytes, what: str, fields: set[str]) -> dict[str, Any]:
    obj = parse_canonical(body, what, limit=MAX_HEAD_BYTES)
    if set(obj) != fields:
        raise CodecError(f"{what}: fields must be exactly {sorted(fields)}, got {sorted(obj)}")
    if not isinstance(obj["time"], float):
        raise CodecError(f"{what}: time must be a float")
    if not isinstance(obj["root"], str) or not _HEX.match(obj["root"]):
        raise CodecError(f"{what}: root must be {HASH_BYTES * 2} lowercase hex digits")
    return obj


def _build(what: str, make: Callable[[], _T]) -> _T:
    try:
        return make()
    except ConfigError as exc:
        raise CodecError(f"{what}: {exc}") from None


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text)


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME or not value.isprintable():
        raise ConfigError(f"{what} must be 1 to {_MAX_NAME} printable characters, got {value!r:.80}")


def _check_size(size: object) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_SIZE:
        raise ConfigError(f"a tree size is a non-negative integer, got {size!r}")


def _check_time(time: object) -> float:
    if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time) or time < 0:
        raise ConfigError(f"time must be a finite non-negative number of seconds, got {time!r}")
    return float(time)
