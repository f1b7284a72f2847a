"""A party's own audit log: appends signed entries, signs tree heads, proves inclusion and consistency.

What is protected from whom.  Every entry and every head is signed with the
party's Ed25519 key, so nobody without that key (a partner, the network, whoever
can write the node's database) can add or change an entry unnoticed.  The party
itself could rewrite its own log and re-sign it; what stops that is
replication: partners hold copies and cosign heads (:mod:`jointly.audit.replica`),
so a rewritten log no longer matches a head a partner countersigned.

The :class:`Ledger` keeps the Merkle tree of its log in memory (rebuilt from
the store when it starts, a few seconds per million entries), so appends, heads
and proofs cost O(log n) hashes.  It assumes it is the only writer of its
party's log in the store; every method is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jointly.audit.entry import DataValue, LedgerEntry, SignedEntry
from jointly.audit.heads import Cosignature, SignedTreeHead, TreeHead
from jointly.audit.merkle import MerkleTree, leaf_hash
from jointly.audit.problems import LedgerRejected
from jointly.audit.store import LedgerStore
from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import CodecError, ConfigError


@dataclass(frozen=True)
class LedgerUpdate:
    """What a partner's replica needs to catch up from ``since`` entries: ``accept(party, key, *update.args)``."""

    party: str
    since: int
    entries: list[bytes]
    head: bytes
    proof: list[bytes]


class Ledger:
    """``party``'s append-only signed log over ``store``."""

    def __init__(
        self,
        party: str,
        signing_key: SigningKey,
        store: LedgerStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.party = party
        self._key = signing_key
        self._store = store
        self._clock = clock
        self._lock = threading.RLock()
        self._tree = MerkleTree.from_leaf_hashes([leaf_hash(raw) for raw in store.entries(party)])
        self._last_head: SignedTreeHead | None = None
        for raw in reversed(store.heads(party)):
            try:
                head = SignedTreeHead.decode(raw)
            except CodecError:
                continue
            if head.party == party and head.size <= self._tree.size and head.root == self._tree.root(head.size):
                self._last_head = head
            break

    @property
    def verify_key(self) -> VerifyKey:
        return self._key.verify_key

    @property
    def size(self) -> int:
        with self._lock:
            return self._tree.size

    def root(self, size: int | None = None) -> bytes:
        """Merkle root of the first ``size`` entries (default: all)."""
        with self._lock:
            return self._tree.root(size)

    def append(
        self, job_id: str, event: str, stage: str = "", data: Mapping[str, DataValue] | None = None
    ) -> SignedEntry:
        """Sign and store the next entry (seq = current size).  ConfigError if ``data`` breaks the entry limits."""
        with self._lock:
            seq = self._tree.size
            entry = LedgerEntry(self.party, seq, self._clock(), job_id, event, stage, dict(data or {}))
            signed = SignedEntry.sign(entry, self._key)
            raw = signed.encode()
            self._store.append(self.party, [(seq, raw)])
            self._tree.append(raw)
            return signed

    def head(self) -> SignedTreeHead:
        """A signed head of the whole log, stored; the last one again if no entry was added since."""
        with self._lock:
            size, root = self._tree.size, self._tree.root()
            last = self._last_head
            if last is not None and last.size == size and last.root == root:
                return last
            signed = SignedTreeHead.sign(TreeHead(self.party, size, root, self._clock()), self._key)
            self._store.put_head(self.party, signed.encode())
            self._last_head = signed
            return signed

    def entries(self, start: int = 0, end: int | None = None) -> list[SignedEntry]:
        """Entries ``start <= seq < end``, decoded (CodecError if the store holds bytes that are not an entry)."""
        return [SignedEntry.decode(raw) for raw in self._store.entries(self.party, start, end)]

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``seq`` in the tree of the first ``size`` entries."""
        with self._lock:
            return self._tree.inclusion_proof(seq, size)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of ``old`` entries to that of ``new`` (default: all)."""
        with self._lock:
            return self._tree.consistency_proof(old, new)

    def update_since(self, since: int) -> LedgerUpdate:
        """Entries from ``since``, a signed head and the consistency proof from ``since`` to it.

        ``since`` is the size of the last head the partner's replica holds
        (:meth:`jointly.audit.replica.Replica.held`).
        """
        with self._lock:
            head = self.head()
            if not isinstance(since, int) or not 0 <= since <= head.size:
                raise ConfigError(f"a partner cannot hold {since!r} entries of a log of {head.size}")
            return LedgerUpdate(
                party=self.party,
                since=since,
                entries=self._store.entries(self.party, since, head.size),
                head=head.encode(),
                proof=self._tree.consistency_proof(since, head.size),
            )

    def add_cosignature(self, cosignature: Cosignature | bytes, verify_key: VerifyKey) -> Cosignature:
        """Check a partner's cosignature of one of this log's heads and store it.

        AuthenticationError if ``verify_key`` did not make it; :class:`LedgerRejected`
        if it is for another log or for a state this log never had (the partner
        was shown, or claims, a forked history).
        """
        cosig = _decode_cosignature(self.party, cosignature)
        if cosig.signer == self.party:
            raise LedgerRejected(self.party, "bad_cosignature", "a party cannot cosign its own log")
        if cosig.party != self.party:
            raise LedgerRejected(self.party, "bad_cosignature", f"the cosignature is of the log of {cosig.party!r}")
        cosig.verify(verify_key)
        with self._lock:
            if cosig.size > self._tree.size:
                raise LedgerRejected(
                    self.party, "missing", f"{cosig.signer} cosigned {cosig.size} entries; this log has {self.size}"
                )
            if self._tree.root(cosig.size) != cosig.root:
                raise LedgerRejected(
                    self.party,
                    "head_mismatch",
                    f"{cosig.signer} cosigned a root this log never had at size {cosig.size}",
                    seq=cosig.size,
                )
            self._store.put_cosignature(self.party, cosig.size, cosig.signer, cosig.encode())
        return cosig

    def cosignatures(self) -> list[Cosignature]:
        """Every stored cosignature of this log's heads that decodes (not re-verified: see verify_log)."""
        out = []
        for _size, _signer, raw in self._store.cosignatures(self.party):
            try:
                out.append(Cosignature.decode(raw))
            except CodecError:
                continue
        return out


def _decode_cosignature(party: str, value: Cosignature | bytes) -> Cosignature:
    if isinstance(value, Cosignature):
        return value
    try:
        return Cosignature.decode(value)
    except CodecError as exc:
        raise LedgerRejected(party, "bad_cosignature", str(exc)) from None
