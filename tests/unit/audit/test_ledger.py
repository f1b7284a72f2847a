"""A party's own log: appends, heads, proofs, restarts, cosignatures, and the store contract."""

from __future__ import annotations

import threading

import pytest

from jointly.audit.heads import Cosignature, TreeHead
from jointly.audit.ledger import Ledger
from jointly.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from jointly.audit.problems import LedgerRejected
from jointly.audit.store import MemoryLedgerStore
from jointly.audit.verify import verify_log
from jointly.crypto.signing import SigningKey
from jointly.errors import AuthenticationError, ConfigError

from .conftest import Clock, Pair, make_node, write_job
from .store_contract import check_ledger_store


def test_append_signs_stores_and_numbers_entries() -> None:
    node = make_node("alice", Clock())
    first = node.ledger.append("job-1", "proposed", data={"spec_sha256": "ab" * 32})
    second = node.ledger.append("job-1", "started", "psi")
    assert (first.entry.seq, second.entry.seq) == (0, 1)
    assert second.entry.stage == "psi" and second.entry.party == "alice"
    assert second.entry.time > first.entry.time
    first.verify(node.key.verify_key)
    assert node.store.entries("alice") == [first.encode(), second.encode()]
    assert [e.entry for e in node.ledger.entries()] == [first.entry, second.entry]
    assert node.ledger.size == 2
    assert node.ledger.root() == MerkleTree.from_leaves(node.store.entries("alice")).root()


def test_oversized_data_is_refused_and_nothing_is_stored() -> None:
    node = make_node("alice", Clock())
    with pytest.raises(ConfigError, match="never raw data"):
        node.ledger.append("job-1", "finished", data={"rows": "1,2,3\n" * 100})
    assert node.store.size("alice") == 0 and node.ledger.size == 0
    assert node.ledger.append("job-1", "finished").entry.seq == 0


def test_heads_proofs_and_their_verification() -> None:
    node = make_node("alice", Clock())
    write_job(node, "job-1", 5)
    head5 = node.ledger.head()
    assert node.ledger.head() is head5  # nothing new: the same head, not stored twice
    write_job(node, "job-2", 6)
    head11 = node.ledger.head()
    assert (head5.size, head11.size) == (5, 11)
    assert len(node.store.heads("alice")) == 2
    head11.verify(node.key.verify_key)
    for seq in range(11):
        proof = node.ledger.inclusion_proof(seq)
        assert verify_inclusion(leaf_hash(node.store.entries("alice")[seq]), seq, 11, proof, head11.root)
    assert verify_inclusion(
        leaf_hash(node.store.entries("alice")[2]), 2, 5, node.ledger.inclusion_proof(2, 5), head5.root
    )
    proof = node.ledger.consistency_proof(5)
    assert proof == node.ledger.consistency_proof(5, 11)
    assert verify_consistency(5, 11, proof, head5.root, head11.root)
    assert not verify_consistency(5, 11, proof, head11.root, head5.root)


def test_restart_continues_the_same_log() -> None:
    clock = Clock()
    node = make_node("alice", clock)
    write_job(node, "job-1")
    head = node.ledger.head()
    again = Ledger("alice", node.key, node.store, clock=clock)
    assert again.size == 4 and again.root() == head.root
    assert again.head() == head  # the stored head is reused, not re-signed
    assert again.append("job-2", "proposed").entry.seq == 4
    assert verify_log("alice", node.store, {"alice": node.key.verify_key}).ok


def test_concurrent_appends_get_distinct_contiguous_seqs() -> None:
    node = make_node("alice", Clock())

    def work(t: int) -> None:
        for i in range(40):
            node.ledger.append(f"job-{t}", "stage", data={"i": i})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.entry.seq for e in node.ledger.entries()]
    assert seqs == list(range(160))
    node.ledger.head()
    assert verify_log("alice", node.store, {"alice": node.key.verify_key}).ok


def test_cosignatures_are_checked_before_they_are_stored(pair: Pair) -> None:
    alice, bob = pair.alice, pair.bob
    assert {c.signer for c in alice.ledger.cosignatures()} == {"bob"}
    assert sorted(size for size, _, _ in alice.store.cosignatures("alice")) == [4, 8, 12]
    head = alice.ledger.head().head
    good = Cosignature.sign(head, signer="bob", key=bob.key, time=1.0)
    with pytest.raises(AuthenticationError):
        alice.ledger.add_cosignature(good, alice.key.verify_key)  # not bob's key
    with pytest.raises(LedgerRejected, match="bad_cosignature"):
        alice.ledger.add_cosignature(
            Cosignature.sign(head, signer="alice", key=alice.key, time=1.0), alice.key.verify_key
        )
    other = TreeHead("bob", head.size, head.root, 1.0)
    with pytest.raises(LedgerRejected, match="log of 'bob'"):
        alice.ledger.add_cosignature(Cosignature.sign(other, signer="bob", key=bob.key, time=1.0), bob.key.verify_key)
    forked = TreeHead("alice", head.size, leaf_hash(b"fork"), 1.0)
    with pytest.raises(LedgerRejected, match="head_mismatch"):
        alice.ledger.add_cosignature(Cosignature.sign(forked, signer="bob", key=bob.key, time=1.0), bob.key.verify_key)
    beyond = TreeHead("alice", head.size + 1, head.root, 1.0)
    with pytest.raises(LedgerRejected, match="missing"):
        alice.ledger.add_cosignature(Cosignature.sign(beyond, signer="bob", key=bob.key, time=1.0), bob.key.verify_key)
    with pytest.raises(LedgerRejected, match="bad_cosignature"):
        alice.ledger.add_cosignature(b"\x01garbage", bob.key.verify_key)
    assert alice.ledger.add_cosignature(good.encode(), bob.key.verify_key) == good


def test_update_since_bounds() -> None:
    node = make_node("alice", Clock())
    write_job(node, "job-1")
    update = node.ledger.update_since(1)
    assert (update.since, len(update.entries), update.party) == (1, 3, "alice")
    assert update.entries == node.store.entries("alice", 1)
    for bad in (-1, 5):
        with pytest.raises(ConfigError):
            node.ledger.update_since(bad)


def test_memory_store_contract() -> None:
    check_ledger_store(MemoryLedgerStore())


def test_ledger_over_a_shared_store_with_a_stranger_writer_fails_loudly() -> None:
    store = MemoryLedgerStore()
    key = SigningKey.generate()
    one, two = Ledger("alice", key, store), Ledger("alice", key, store)
    one.append("j", "e")
    with pytest.raises(ConfigError, match="seq 0 given where 1"):
        two.append("j", "e")
