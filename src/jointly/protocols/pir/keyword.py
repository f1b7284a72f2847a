"""Keyword PIR: fetch the value stored under a key, or learn that the key is absent, by index PIR.

Layout.  A public random ``salt`` and ``SHAKE-256(salt || key)`` give each key a bucket
``b(key)`` (one of ``buckets``), a digest ``t(key)`` of ``digest_bytes`` bytes (top bit set, so
it never equals an empty slot, which is all zeros) and a mask ``m(key)`` of ``value_bytes``
bytes.  Bucket ``b`` is one record of :mod:`~jointly.protocols.pir.simplepir` -- one column of
the database matrix -- holding ``capacity`` slots ``t(key) || value XOR m(key)`` for the keys
hashed to it (simple hashing).  By default ``buckets = 1.2 sqrt(n * slot)`` (about square), and
``capacity`` is the smallest with ``buckets * Pr[Binomial(n, 1/buckets) > capacity] <= 2**-20``.
If a bucket overflows anyway, or two keys of one bucket share a digest,
the server draws a new salt and rebuilds (up to ``max_attempts`` times), then stops with a
:class:`~jointly.errors.ConfigError` that says what to raise.

Lookup.  The client computes ``b(key)``, fetches bucket ``b(key)`` with one index-PIR query,
and looks for ``t(key)`` among its slots: found, it unmasks the value; not found, the key is
absent.  An absent key matches a stored digest with probability at most
``capacity * 2**(1 - 8 * digest_bytes)`` (``2**-55`` for the defaults).

What is protected from whom.  The server learns nothing about the key (it sees one LWE
query of a fixed size per key, whatever the key and whether it is present); it learns
how many keys the client looks up.  The client learns the value for its key and the
bucket's other slots: their digests and masked values.  Masks and digests are hashes of
the key, so for keys with little entropy (phone numbers) a client can test guesses
offline: as in every PIR (not symmetric PIR), the database is not hidden from the client.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jointly.channel.codec import encode, message
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.protocols.pir.params import MAX_COLS, choose_params
from jointly.protocols.pir.simplepir import PirAnswer, PirClient, PirQuery, PirServer, PirSetup, QueryState

SALT_BYTES = 16
DEFAULT_DIGEST_BYTES = 8
OVERFLOW_LOG2 = -20.0  # an overflow only costs a rebuild with a fresh salt
_DOMAIN = b"jointly.pir.keyword.v1"


@message("jointly.pir.KeywordPirSetup")
@dataclass(frozen=True)
class KeywordPirSetup:
    """Public: the index-PIR setup of the bucket table and how keys map to buckets and slots."""

    pir: PirSetup
    salt: bytes
    buckets: int
    capacity: int
    digest_bytes: int
    value_bytes: int

    @property
    def slot_bytes(self) -> int:
        return self.digest_bytes + self.value_bytes

    @property
    def nbytes(self) -> int:
        return self.pir.nbytes + len(self.salt)


@dataclass(frozen=True)
class KeywordQueryState:
    """The client's secret state for one key (never sent)."""

    key: bytes
    pir: QueryState
    digest: bytes
    mask: bytes


def setup_digest(setup: KeywordPirSetup) -> bytes:
    """SHA-256 of the setup's wire encoding: how a client names the setup it has cached."""
    return hashlib.sha256(encode(setup)).digest()


def _derive(salt: bytes, key: bytes, buckets: int, digest_bytes: int, value_bytes: int) -> tuple[int, bytes, bytes]:
    out = hashlib.shake_256(_DOMAIN + salt + len(key).to_bytes(8, "little") + key).digest(
        8 + digest_bytes + value_bytes
    )
    bucket = int.from_bytes(out[:8], "little") % buckets  # bias below 2**-40 for buckets <= 2**24
    digest = bytes([out[8] | 0x80]) + out[9 : 8 + digest_bytes]
    return bucket, digest, out[8 + digest_bytes :]


def _log2_tail(n: int, buckets: int, capacity: int) -> float:
    """log2 of the union bound ``buckets * Pr[Binomial(n, 1/buckets) > capacity]`` (exact binomial tail)."""
    if capacity >= n:
        return -math.inf
    p = 1.0 / buckets
    if p >= 1.0:
        return -math.inf
    log_p, log_q = math.log(p), math.log1p(-p)

    def log_term(k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q

    first = log_term(capacity + 1)
    total, k = 1.0, capacity + 1
    while k < n:  # terms relative to the first; past the mean they fall geometrically
        k += 1
        ratio = math.exp(log_term(k) - first)
        total += ratio
        if ratio < 1e-18 * total:
            break
    return (first + math.log(total) + math.log(buckets)) / math.log(2)


def choose_capacity(n: int, buckets: int) -> int:
    """The smallest bucket capacity whose overflow probability is at most ``2**OVERFLOW_LOG2``."""
    capacity = max(1, math.ceil(n / buckets))
    while _log2_tail(n, buckets, capacity) > OVERFLOW_LOG2:
        capacity += 1
    return min(capacity, max(n, 1))


class KeywordPirServer:
    """Holds ``key -> value`` items (values of exactly ``value_bytes`` bytes) as a table of buckets."""

    def __init__(
        self,
        items: Mapping[bytes, bytes],
        *,
        value_bytes: int,
        digest_bytes: int = DEFAULT_DIGEST_BYTES,
        buckets: int | None = None,
        capacity: int | None = None,
        max_attempts: int = 4,
    ) -> None:
        if isinstance(value_bytes, bool) or not isinstance(value_bytes, int) or value_bytes < 1:
            raise ConfigError(f"value_bytes must be a positive integer, got {value_bytes!r}")
        if not isinstance(digest_bytes, int) or not 4 <= digest_bytes <= 32:
            raise ConfigError(f"digest_bytes must be in [4, 32], got {digest_bytes!r}")
        keys: list[bytes] = []
        values = np.empty((len(items), value_bytes), dtype=np.uint8)
        for i, (key, value) in enumerate(items.items()):
            if not isinstance(key, bytes):
                raise DataError("items", f"keys must be bytes, got {type(key).__name__}", row=i)
            if not isinstance(value, bytes | bytearray) or len(value) != value_bytes:
                raise DataError("items", f"every value must be {value_bytes} bytes", row=i)
            keys.append(key)
            values[i] = np.frombuffer(value, dtype=np.uint8)
        n = len(keys)
        slot = digest_bytes + value_bytes
        if buckets is None:
            buckets = max(1, min(MAX_COLS, math.ceil(1.2 * math.sqrt(max(n, 1) * slot))))
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= MAX_COLS:
            raise ConfigError(f"buckets must be in [1, {MAX_COLS}], got {buckets!r}")
        if capacity is None:
            capacity = choose_capacity(n, buckets)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"capacity must be a positive integer, got {capacity!r}")
        self.value_bytes = value_bytes
        self.digest_bytes = digest_bytes
        self.buckets = buckets
        self.capacity = capacity
        self.num_items = n
        for _ in range(max_attempts):
            salt = os.urandom(SALT_BYTES)
            table = self._build(salt, keys, values)
            if table is not None:
                break
        else:
            raise ConfigError(
                f"{n} keys do not fit {buckets} buckets of {capacity} slots after {max_attempts} tries with "
                "fresh salts (a bucket overflowed or two keys shared a digest): raise capacity or buckets"
            )
        self.salt = salt
        params = choose_params(buckets, capacity * slot, per_column=1)
        self._pir = PirServer(table.reshape(buckets, capacity * slot), record_bytes=capacity * slot, params=params)
        self._setup: KeywordPirSetup | None = None
        self._digest: bytes | None = None

    def _build(self, salt: bytes, keys: list[bytes], values: np.ndarray) -> np.ndarray | None:
        t, v = self.digest_bytes, self.value_bytes
        n = len(keys)
        bucket = np.empty(n, dtype=np.int64)
        digests = np.empty((n, t), dtype=np.uint8)
        masks = np.empty((n, v), dtype=np.uint8)
        for i, key in enumerate(keys):
            b, d, m = _derive(salt, key, self.buckets, t, v)
            bucket[i] = b
            digests[i] = np.frombuffer(d, dtype=np.uint8)
            masks[i] = np.frombuffer(m, dtype=np.uint8)
        counts = np.bincount(bucket, minlength=self.buckets)
        if n and counts.max() > self.capacity:
            return None
        order = np.argsort(bucket, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - starts[bucket[order]]
        # two keys of one bucket with the same digest would be confused: rebuild
        tagged = np.concatenate([bucket.astype("<u8").view(np.uint8).reshape(n, 8), digests], axis=1)
        if n and len(np.unique(tagged, axis=0)) != n:
            return None
        table = np.zeros((self.buckets, self.capacity, t + v), dtype=np.uint8)
        table[bucket, rank, :t] = digests
        table[bucket, rank, t:] = values ^ masks
        return table

    @property
    def db_bytes(self) -> int:
        return self._pir.db_bytes

    @property
    def pir(self) -> PirServer:
        return self._pir

    def setup(self) -> KeywordPirSetup:
        """The public setup (computed once, then cached)."""
        if self._setup is None:
            self._setup = KeywordPirSetup(
                pir=self._pir.setup(),
                salt=self.salt,
                buckets=self.buckets,
                capacity=self.capacity,
                digest_bytes=self.digest_bytes,
                value_bytes=self.value_bytes,
            )
        return self._setup

    def setup_digest(self) -> bytes:
        """:func:`setup_digest` of :meth:`setup`, computed once."""
        if self._digest is None:
            self._digest = setup_digest(self.setup())
        return self._digest

    def answer(self, queries: Sequence[PirQuery]) -> list[PirAnswer]:
        """Answers to any number of bucket queries (one per key), in one pass over the table."""
        return self._pir.answer_batch(queries)


class KeywordPirClient:
    """Makes one bucket query per key and finds the key's slot in the decoded bucket."""

    def __init__(self, setup: KeywordPirSetup) -> None:
        if not isinstance(setup, KeywordPirSetup):
            raise ProtocolViolation(f"expected a KeywordPirSetup, got {type(setup).__name__}")
        for name in ("buckets", "capacity", "digest_bytes", "value_bytes"):
            value = getattr(setup, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProtocolViolation(f"KeywordPirSetup.{name} must be a positive integer")
        if not isinstance(setup.salt, bytes) or len(setup.salt) != SALT_BYTES:
            raise ProtocolViolation(f"the salt must be {SALT_BYTES} bytes")
        if setup.digest_bytes < 4:
            raise ProtocolViolation("digests shorter than 4 bytes would give false matches")
        self._pir = PirClient(setup.pir)
        params = self._pir.params
        if params.num_records != setup.buckets or params.record_bytes != setup.capacity * setup.slot_bytes:
            raise ProtocolViolation("the bucket table does not match the PIR parameters")
        self.setup = setup
        self.setup_digest = setup_digest(setup)

    def query(self, key: bytes) -> tuple[list[PirQuery], KeywordQueryState]:
        """The queries for ``key`` (always exactly one, of the same size for every key)."""
        if not isinstance(key, bytes):
            raise ConfigError(f"keys must be bytes, got {type(key).__name__}")
        s = self.setup
        bucket, digest, mask = _derive(s.salt, key, s.buckets, s.digest_bytes, s.value_bytes)
        query, state = self._pir.query(bucket)
        return [query], KeywordQueryState(key=key, pir=state, digest=digest, mask=mask)

    def decode(self, answers: Sequence[PirAnswer], state: KeywordQueryState) -> bytes | None:
        """The value stored under the key, or None if the key is absent."""
        if len(answers) != 1:
            raise ProtocolViolation(f"expected one answer per key, got {len(answers)}")
        s = self.setup
        bucket = np.frombuffer(self._pir.decode(answers[0], state.pir), dtype=np.uint8)
        slots = bucket.reshape(s.capacity, s.slot_bytes)
        want = np.frombuffer(state.digest, dtype=np.uint8)
        hits = np.flatnonzero((slots[:, : s.digest_bytes] == want).all(axis=1))
        if len(hits) == 0:
            return None
        masked = slots[hits[0], s.digest_bytes :]
        return (masked ^ np.frombuffer(state.mask, dtype=np.uint8)).tobytes()
