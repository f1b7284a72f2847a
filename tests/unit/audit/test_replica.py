"""A replica accepts a partner's update only if it extends what it held, and stores nothing otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from jointly.audit.entry import LedgerEntry, SignedEntry
from jointly.audit.heads import SignedTreeHead, TreeHead
from jointly.audit.ledger import Ledger, LedgerUpdate
from jointly.audit.merkle import leaf_hash
from jointly.audit.problems import LedgerRejected
from jointly.audit.store import MemoryLedgerStore
from jointly.crypto.signing import SigningKey

from .conftest import Pair, write_job


def test_replication_copies_the_log_and_cosigns(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob
    assert bob.store.entries("alice") == alice.store.entries("alice")
    assert alice.store.entries("bob") == bob.store.entries("bob")
    assert bob.replica.held("alice") == 12 and bob.replica.held("carol") == 0
    last = bob.replica.last_head("alice")
    assert last is not None and last.root == alice.ledger.root()
    # the replica keeps its own cosignatures too, the owner keeps the partner's
    assert [(s, who) for s, who, _ in bob.store.cosignatures("alice")] == [(4, "bob"), (8, "bob"), (12, "bob")]
    assert [(s, who) for s, who, _ in alice.store.cosignatures("alice")] == [(4, "bob"), (8, "bob"), (12, "bob")]
    # nothing new: an update with no entries is accepted and cosigned again
    update = alice.ledger.update_since(12)
    assert update.entries == [] and update.proof == []
    cosig = bob.replica.accept("alice", alice.key.verify_key, [], update.head, [])
    assert cosig.size == 12


def _pending(pair: Pair, extra: int = 4) -> LedgerUpdate:
    write_job(pair.alice, "job-4", extra)
    return pair.alice.ledger.update_since(pair.bob.replica.held("alice"))


def _state(pair: Pair) -> tuple[int, int, int]:
    store = pair.bob.store
    return store.size("alice"), len(store.heads("alice")), len(store.cosignatures("alice"))


def _accept(pair: Pair, update: LedgerUpdate, **changes: object) -> None:
    u = dataclasses.replace(update, **changes)  # type: ignore[arg-type]
    pair.bob.replica.accept("alice", pair.alice.key.verify_key, u.entries, u.head, u.proof)


def _resign(raw: bytes, key: SigningKey, **changes: object) -> bytes:
    entry = dataclasses.replace(SignedEntry.decode(raw).entry, **changes)  # type: ignore[arg-type]
    return SignedEntry.sign(entry, key).encode()


def _refused(pair: Pair, update: LedgerUpdate, kind: str, seq: int | None, **changes: object) -> None:
    before = _state(pair)
    with pytest.raises(LedgerRejected) as info:
        _accept(pair, update, **changes)
    assert (info.value.kind, info.value.seq) == (kind, seq), str(info.value)
    assert info.value.party == "alice"
    assert _state(pair) == before  # nothing of a refused update is stored


def _honest(pair: Pair, update: LedgerUpdate) -> None:
    """The honest update still goes through after refused ones, and a retry of it too."""
    _accept(pair, update)
    _accept(pair, update)
    assert pair.bob.store.entries("alice") == pair.alice.store.entries("alice")


def test_refuses_a_dropped_entry(pair: Pair) -> None:
    update = _pending(pair)
    _refused(pair, update, "missing", 15, entries=update.entries[:-1])
    _refused(pair, update, "missing", 12, entries=update.entries[1:])
    _honest(pair, update)


def test_refuses_an_entry_not_signed_by_the_partner(pair: Pair) -> None:
    update = _pending(pair)
    forged = _resign(update.entries[1], pair.bob.key, event="forged")
    _refused(pair, update, "bad_signature", 13, entries=[update.entries[0], forged, *update.entries[2:]])
    _honest(pair, update)


def test_refuses_an_entry_of_another_party(pair: Pair) -> None:
    update = _pending(pair)
    planted = _resign(update.entries[1], pair.bob.key, party="bob")
    _refused(pair, update, "wrong_party", 13, entries=[update.entries[0], planted, *update.entries[2:]])
    _honest(pair, update)


def test_refuses_reordered_entries(pair: Pair) -> None:
    update = _pending(pair)
    e = update.entries
    _refused(pair, update, "out_of_order", 13, entries=[e[0], e[2], e[1], e[3]])
    _honest(pair, update)


def test_refuses_a_head_not_signed_by_the_partner(pair: Pair) -> None:
    update = _pending(pair)
    head = SignedTreeHead.decode(update.head)
    by_bob = SignedTreeHead.sign(head.head, pair.bob.key).encode()
    _refused(pair, update, "bad_signature", None, head=by_bob)
    other = SignedTreeHead.sign(dataclasses.replace(head.head, party="bob"), pair.alice.key).encode()
    _refused(pair, update, "wrong_party", None, head=other)
    _refused(pair, update, "altered", None, head=update.head[:-3])
    _honest(pair, update)


def test_refuses_entries_that_do_not_give_the_head_root(pair: Pair) -> None:
    update = _pending(pair)
    # alice-signed, right seq, but not the entry the head covers
    swapped = _resign(update.entries[-1], pair.alice.key, event="something else")
    _refused(pair, update, "head_mismatch", 16, entries=[*update.entries[:-1], swapped])
    _honest(pair, update)


def test_refuses_rewritten_history(pair: Pair) -> None:
    """alice rewrites entry 5 (re-signed with her own key) and continues: bob held a head at 12 and refuses."""
    alice = pair.alice
    rewritten = MemoryLedgerStore()
    raws = alice.store.entries("alice")
    raws[5] = _resign(raws[5], alice.key, event="rewritten")
    rewritten.append("alice", list(enumerate(raws)))
    liar = Ledger("alice", alice.key, rewritten)
    write_job_ledger(liar)
    update = liar.update_since(pair.bob.replica.held("alice"))
    before = _state(pair)
    with pytest.raises(LedgerRejected) as info:
        pair.bob.replica.accept("alice", alice.key.verify_key, update.entries, update.head, update.proof)
    assert info.value.kind == "inconsistent" and info.value.seq == 12
    assert "history rewritten" in str(info.value)
    assert _state(pair) == before
    # a proof borrowed from the honest log does not help either
    honest = _pending(pair)
    with pytest.raises(LedgerRejected, match="inconsistent"):
        pair.bob.replica.accept("alice", alice.key.verify_key, update.entries, update.head, honest.proof)


def write_job_ledger(ledger: Ledger) -> None:
    for event in ("proposed", "started", "finished", "model_stored"):
        ledger.append("job-4", event)


def test_refuses_a_shrunk_log(pair: Pair) -> None:
    alice = pair.alice
    short = MemoryLedgerStore()
    short.append("alice", list(enumerate(alice.store.entries("alice")[:8])))
    update = Ledger("alice", alice.key, short).update_since(8)
    with pytest.raises(LedgerRejected, match="fewer than the 12 held"):
        pair.bob.replica.accept("alice", alice.key.verify_key, update.entries, update.head, update.proof)


def test_refuses_a_bad_consistency_proof(pair: Pair) -> None:
    update = _pending(pair)
    _refused(pair, update, "inconsistent", 12, proof=[leaf_hash(b"x"), *update.proof[1:]])
    _refused(pair, update, "inconsistent", 12, proof=[])
    _refused(pair, update, "inconsistent", 12, proof=[*update.proof, update.proof[0]])
    _honest(pair, update)


def test_resent_entries_must_be_identical(pair: Pair) -> None:
    update = _pending(pair)
    overlap = pair.alice.store.entries("alice", 10, 12)
    altered = _resign(overlap[1], pair.alice.key, event="changed")
    before = _state(pair)
    with pytest.raises(LedgerRejected) as info:
        _accept(pair, update, entries=[overlap[0], altered, *update.entries])
    assert (info.value.kind, info.value.seq) == ("altered", 11)
    assert _state(pair) == before
    with pytest.raises(LedgerRejected, match="missing"):
        _accept(pair, update, entries=update.entries[2:])
    _accept(pair, update, entries=[*overlap, *update.entries])  # resending held entries is fine
    assert pair.bob.store.entries("alice") == pair.alice.store.entries("alice")


def test_refuses_to_replicate_its_own_log(pair: Pair) -> None:
    update = pair.bob.ledger.update_since(0)
    with pytest.raises(LedgerRejected, match="own log"):
        pair.bob.replica.accept("bob", pair.bob.key.verify_key, update.entries, update.head, update.proof)


def test_a_new_partner_log_starts_from_empty() -> None:
    from .conftest import Clock, make_node

    clock = Clock()
    alice, bob = make_node("alice", clock), make_node("bob", clock)
    write_job(alice, "j")
    update = alice.ledger.update_since(0)
    assert update.proof == []
    cosig = bob.replica.accept("alice", alice.key.verify_key, update.entries, update.head, update.proof)
    assert (cosig.signer, cosig.party, cosig.size) == ("bob", "alice", 4)
    entry = LedgerEntry("alice", 0, 1.0, "j", "x")
    bad_head = SignedTreeHead.sign(TreeHead("alice", 1, leaf_hash(entry.encode()), 1.0), alice.key).encode()
    with pytest.raises(LedgerRejected, match="inconsistent"):
        bob.replica.accept("alice", alice.key.verify_key, [], bad_head, [])
