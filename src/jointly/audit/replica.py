"""Replicas of partners' logs: accept a partner's new entries only if they extend what was held, then cosign.

A node keeps, next to its own log, a copy of each partner's log in the same
store (under the partner's name).  When a partner pushes an update (new entries,
its new signed head, and the RFC 9162 consistency proof from the last head this
replica holds), :meth:`Replica.accept` checks, before storing anything:

1. the head is signed by the partner and is about the partner's log;
2. the consistency proof shows the new head extends the last head held here
   (a partner that rewrote, dropped or reordered history it had shown before
   fails here, with kind ``inconsistent``);
3. entries this replica already holds and the partner resends are byte-identical
   (``altered`` otherwise), and the new ones continue the log without a gap;
4. every new entry is signed by the partner, names the partner and carries the
   next seq (``bad_signature``, ``wrong_party``, ``out_of_order``);
5. the Merkle root over the replica's leaves equals the new head's root
   (``head_mismatch``), so the head covers exactly the entries stored.

Then it stores the entries and the head and countersigns the head with this
party's key.  What this protects: a partner cannot later show anyone a history
that differs from what it showed here without the difference being provable
(its own signed heads and this replica's cosignatures).  It does not stop a
partner from showing two partners two different forks at the same time; those
forks show when partners compare their replicas (``verify_log(..., partner_view=...)``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from jointly.audit.entry import SignedEntry
from jointly.audit.heads import Cosignature, SignedTreeHead
from jointly.audit.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, verify_consistency
from jointly.audit.problems import LedgerRejected
from jointly.audit.store import LedgerStore
from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import AuthenticationError, CodecError

MAX_PROOF_HASHES = 128


class Replica:
    """This party's (``signer``'s) copies of its partners' logs in ``store``; cosigns what it accepted."""

    def __init__(
        self,
        signer: str,
        signing_key: SigningKey,
        store: LedgerStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self._key = signing_key
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._trees: dict[str, MerkleTree] = {}
        self._heads: dict[str, SignedTreeHead | None] = {}

    def held(self, party: str) -> int:
        """Size of the last head of ``party``'s log accepted here (0 if none): where its next update starts."""
        with self._lock:
            head = self._last_head(party)
            return 0 if head is None else head.size

    def last_head(self, party: str) -> SignedTreeHead | None:
        with self._lock:
            return self._last_head(party)

    def accept(
        self,
        party: str,
        verify_key: VerifyKey,
        entries: Sequence[bytes],
        head: bytes,
        proof: Sequence[bytes],
    ) -> Cosignature:
        """Check a partner's update (see the module docstring), store it and return this party's cosignature.

        Raises :class:`LedgerRejected` (a ProtocolViolation) naming the kind of
        problem and the seq; nothing is stored then.
        """
        if party == self.signer:
            raise LedgerRejected(party, "wrong_party", "a party does not keep a replica of its own log")
        with self._lock:
            new = self._decode_head(party, verify_key, head)
            old = self._last_head(party)
            old_size, old_root = (0, EMPTY_ROOT) if old is None else (old.size, old.root)
            if new.size < old_size:
                raise LedgerRejected(
                    party, "inconsistent", f"its new head has {new.size} entries, fewer than the {old_size} held here"
                )
            same = (new.size, new.root) == (old_size, old_root)  # a retried update: the proof may be from before
            if not same and (
                len(proof) > MAX_PROOF_HASHES
                or not verify_consistency(old_size, new.size, list(proof), old_root, new.root)
            ):
                raise LedgerRejected(
                    party,
                    "inconsistent",
                    f"its head at size {new.size} does not extend the head at size {old_size} held here "
                    "(history rewritten, or a bad consistency proof)",
                    seq=old_size,
                )
            tree = self._tree(party)
            held = tree.size
            fresh = self._check_entries(party, verify_key, entries, held, new.size)
            try:
                for raw in fresh:
                    tree.append(raw)
                if tree.root() != new.root:
                    raise LedgerRejected(
                        party,
                        "head_mismatch",
                        f"the root of its {new.size} entries is not the root of its signed head",
                        seq=new.size,
                    )
                if fresh:
                    self._store.append(party, [(held + i, raw) for i, raw in enumerate(fresh)])
            except BaseException:
                tree.truncate(held)
                raise
            self._store.put_head(party, new.encode())
            self._heads[party] = new
            cosig = Cosignature.sign(new.head, signer=self.signer, key=self._key, time=self._clock())
            self._store.put_cosignature(party, cosig.size, cosig.signer, cosig.encode())
            return cosig

    def _decode_head(self, party: str, verify_key: VerifyKey, head: bytes) -> SignedTreeHead:
        try:
            new = SignedTreeHead.decode(head)
        except CodecError as exc:
            raise LedgerRejected(party, "altered", str(exc)) from None
        if new.party != party:
            raise LedgerRejected(party, "wrong_party", f"the head is of {new.party!r}'s log")
        try:
            new.verify(verify_key)
        except AuthenticationError:
            raise LedgerRejected(party, "bad_signature", "its tree head is not signed by its key") from None
        return new

    def _check_entries(
        self, party: str, verify_key: VerifyKey, entries: Sequence[bytes], held: int, size: int
    ) -> list[bytes]:
        """The entries beyond ``held``, each checked; resent ones must equal what is stored."""
        start = _decode(party, entries[0], held).entry.seq if entries else size
        if size < held:
            raise LedgerRejected(
                party, "inconsistent", f"its head covers {size} entries, fewer than the {held} held here", seq=size
            )
        if start > held:
            raise LedgerRejected(party, "missing", f"entries {held}..{start - 1} were not sent", seq=held)
        if start + len(entries) != size:
            raise LedgerRejected(
                party,
                "missing",
                f"the head covers {size} entries but entries {start}..{start + len(entries) - 1} were sent",
                seq=min(start + len(entries), size),
            )
        overlap = held - start
        if overlap:
            stored = self._store.entries(party, start, held)
            for i, (mine, theirs) in enumerate(zip(stored, entries[:overlap], strict=True)):
                if mine != theirs:
                    raise LedgerRejected(
                        party, "altered", "it resent an entry that differs from the copy held here", seq=start + i
                    )
        fresh = list(entries[overlap:])
        for i, raw in enumerate(fresh):
            seq = held + i
            signed = _decode(party, raw, seq)
            if signed.entry.party != party:
                raise LedgerRejected(party, "wrong_party", f"the entry names {signed.entry.party!r}", seq=seq)
            if signed.entry.seq != seq:
                raise LedgerRejected(party, "out_of_order", f"the entry claims seq {signed.entry.seq}", seq=seq)
            try:
                signed.verify(verify_key)
            except AuthenticationError:
                raise LedgerRejected(party, "bad_signature", "the entry is not signed by its key", seq=seq) from None
        return fresh

    def _tree(self, party: str) -> MerkleTree:
        tree = self._trees.get(party)
        if tree is None:
            tree = MerkleTree.from_leaf_hashes([leaf_hash(raw) for raw in self._store.entries(party)])
            self._trees[party] = tree
        return tree

    def _last_head(self, party: str) -> SignedTreeHead | None:
        if party not in self._heads:
            last = None
            for raw in reversed(self._store.heads(party)):
                try:
                    last = SignedTreeHead.decode(raw)
                except CodecError:
                    continue
                break
            self._heads[party] = last
        return self._heads[party]


def _decode(party: str, raw: bytes, seq: int) -> SignedEntry:
    try:
        return SignedEntry.decode(raw)
    except CodecError as exc:
        raise LedgerRejected(party, "altered", str(exc), seq=seq) from None
