"""Ledger entries: one job event, its canonical bytes, and its author's Ed25519 signature.

Encoding (version 1).  An entry is the canonical JSON object

    {"data": {...}, "event": str, "job_id": str, "party": str, "seq": int, "stage": str, "time": float}

written with sorted keys, no whitespace, UTF-8 (non-ASCII kept as is), no NaN or
infinity: ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)``.  Decoding re-encodes and demands the same bytes, so every
entry has exactly one encoding and a signature covers that encoding.

A signed entry is ``0x01 || signature (64 bytes) || entry bytes`` where the
signature is the author's Ed25519 signature of ``b"jointly/ledger/entry/v1\\0" ||
entry bytes``: the domain prefix means an entry signature can never be replayed
as a tree-head signature, an approval or anything else the same key signs.  The
Merkle leaf of an entry is this signed encoding.

What is protected from whom: the signature protects an entry against forgery and
change by anyone without its author's key (a partner, a storage operator, the
network).  The size guard protects partners from a party that would put raw
data into the ledger (which every partner replicates): values are short scalars
or short lists of scalars, an entry is at most 8 KiB.  Bytes from a peer are
untrusted: :meth:`LedgerEntry.decode` and :meth:`SignedEntry.decode` accept
nothing but a well-formed, canonical, in-limits entry and raise
:class:`~jointly.errors.CodecError` otherwise; building an entry locally that
breaks a limit raises :class:`~jointly.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jointly.audit.codec import NOT_CANONICAL, canonical_json, parse_json
from jointly.audit.merkle import leaf_hash
from jointly.crypto.signing import SIGNATURE_BYTES, SigningKey, VerifyKey
from jointly.errors import CodecError, ConfigError

ENTRY_DOMAIN = b"jointly/ledger/entry/v1\0"
SIGNED_ENTRY_VERSION = 1

MAX_ENTRY_BYTES = 8192
MAX_STRING = 256
MAX_LIST = 64
MAX_KEYS = 64
MAX_KEY = 64
MAX_NAME = 128
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)

Scalar = str | int | float | bool | None
DataValue = Scalar | list[Scalar] | tuple[Scalar, ...]

_FIELDS = frozenset({"data", "event", "job_id", "party", "seq", "stage", "time"})


@dataclass(frozen=True)
class LedgerEntry:
    """One job event written by ``party`` as the ``seq``-th entry (from 0) of its log.

    ``data`` maps short names to short scalars or short lists of scalars: hashes,
    counts, names, reasons.  Never raw data: the limits make that impossible in bulk.
    """

    party: str
    seq: int
    time: float
    job_id: str
    event: str
    stage: str = ""
    data: Mapping[str, DataValue] = field(default_factory=dict)
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            _check_entry(self.party, self.seq, self.time, self.job_id, self.event, self.stage, self.data)
        except _Invalid as exc:
            raise ConfigError(f"ledger entry: {exc}") from None
        object.__setattr__(self, "time", float(self.time))
        frozen = {k: tuple(v) if isinstance(v, list) else v for k, v in self.data.items()}
        object.__setattr__(self, "data", MappingProxyType(frozen))
        try:
            encoded = canonical_json(self.to_dict())
        except UnicodeEncodeError:
            raise ConfigError("ledger entry: text must be valid Unicode (no lone surrogates)") from None
        if len(encoded) > MAX_ENTRY_BYTES:
            raise ConfigError(f"ledger entry: {len(encoded)} bytes is over the {MAX_ENTRY_BYTES}-byte limit")
        object.__setattr__(self, "_encoded", encoded)

    def to_dict(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "seq": self.seq,
            "time": self.time,
            "job_id": self.job_id,
            "event": self.event,
            "stage": self.stage,
            "data": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in self.data.items()},
        }

    def encode(self) -> bytes:
        """The canonical bytes of this entry."""
        return self._encoded

    @classmethod
    def decode(cls, raw: bytes) -> LedgerEntry:
        """Strictly decode untrusted entry bytes; CodecError names the first problem."""
        obj = parse_json(raw, "ledger entry", limit=MAX_ENTRY_BYTES)
        if set(obj) != _FIELDS:
            extra, missing = sorted(set(obj) - _FIELDS), sorted(_FIELDS - set(obj))
            raise CodecError(f"ledger entry: unknown fields {extra}, missing fields {missing}")
        if not isinstance(obj["time"], float):
            raise CodecError("ledger entry: time must be a float")
        try:
            entry = cls(obj["party"], obj["seq"], obj["time"], obj["job_id"], obj["event"], obj["stage"], obj["data"])
        except ConfigError as exc:
            raise CodecError(str(exc)) from None
        if entry.encode() != raw:
            raise CodecError(f"ledger entry: {NOT_CANONICAL}")
        return entry


@dataclass(frozen=True)
class SignedEntry:
    """An entry's exact bytes and its author's signature over them (domain-separated)."""

    entry: LedgerEntry
    entry_bytes: bytes
    signature: bytes

    @classmethod
    def sign(cls, entry: LedgerEntry, key: SigningKey) -> SignedEntry:
        body = entry.encode()
        return cls(entry, body, key.sign(ENTRY_DOMAIN + body))

    def verify(self, key: VerifyKey) -> None:
        """Return if ``key`` signed this entry, else raise AuthenticationError."""
        key.verify(ENTRY_DOMAIN + self.entry_bytes, self.signature)

    def encode(self) -> bytes:
        """``0x01 || signature || entry bytes``: what the store keeps and the Merkle leaf holds."""
        return bytes([SIGNED_ENTRY_VERSION]) + self.signature + self.entry_bytes

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())

    @classmethod
    def decode(cls, raw: bytes) -> SignedEntry:
        """Strictly decode untrusted signed-entry bytes (does not check the signature: see :meth:`verify`)."""
        if not isinstance(raw, bytes):
            raise CodecError(f"signed ledger entry: expected bytes, got {type(raw).__name__}")
        if len(raw) < 1 + SIGNATURE_BYTES or raw[0] != SIGNED_ENTRY_VERSION:
            raise CodecError("signed ledger entry: too short or unknown version")
        body = raw[1 + SIGNATURE_BYTES :]
        return cls(LedgerEntry.decode(body), body, raw[1 : 1 + SIGNATURE_BYTES])


class _Invalid(Exception):
    """Internal: a field is out of limits (mapped to ConfigError or CodecError by the caller)."""


def _check_entry(party: Any, seq: Any, time: Any, job_id: Any, event: Any, stage: Any, data: Any) -> None:
    _check_name("party", party, nonempty=True)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_INT:
        raise _Invalid(f"seq must be a non-negative integer, got {seq!r}")
    if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time) or time < 0:
        raise _Invalid(f"time must be a finite non-negative number of seconds, got {time!r}")
    _check_name("job_id", job_id, nonempty=False)
    _check_name("event", event, nonempty=True)
    _check_name("stage", stage, nonempty=False)
    if not isinstance(data, Mapping):
        raise _Invalid(f"data must be a mapping, got {type(data).__name__}")
    if len(data) > MAX_KEYS:
        raise _Invalid(f"data has {len(data)} keys, at most {MAX_KEYS} allowed")
    for key, value in data.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY:
            raise _Invalid(f"data keys are strings of 1 to {MAX_KEY} characters, got {key!r:.80}")
        if isinstance(value, (list, tuple)):
            if len(value) > MAX_LIST:
                raise _Invalid(f"data[{key!r}] has {len(value)} items, at most {MAX_LIST} allowed")
            for item in value:
                _check_scalar(key, item)
        else:
            _check_scalar(key, value)


def _check_name(what: str, value: Any, *, nonempty: bool) -> None:
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_NAME or (nonempty and not value):
        raise _Invalid(f"{what} must be {'1' if nonempty else '0'} to {MAX_NAME} characters, got {len(value)}")
    if not value.isprintable():
        raise _Invalid(f"{what} must be printable text")


def _check_scalar(key: str, value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            raise _Invalid(f"data[{key!r}]: integer {value} is outside the signed 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(f"data[{key!r}]: numbers must be finite")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _Invalid(
                f"data[{key!r}]: a {len(value)}-character string is over the {MAX_STRING}-character limit "
                "(the ledger holds hashes, counts and names, never raw data)"
            )
        return
    raise _Invalid(f"data[{key!r}]: {type(value).__name__} values are not allowed (str, int, float, bool, None)")
