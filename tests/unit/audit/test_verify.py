"""Every kind of tampering with a stored log is reported, on the party itself and against a partner's copy."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jointly.audit.entry import SignedEntry
from jointly.audit.heads import Cosignature, SignedTreeHead
from jointly.audit.ledger import Ledger
from jointly.audit.store import MemoryLedgerStore
from jointly.audit.verify import LogReport, LogView, verify_log, verify_store
from jointly.crypto.signing import SigningKey

from .conftest import Pair


def found(report: LogReport) -> set[tuple[str, int | None]]:
    return {(p.kind, p.seq) for p in report.problems}


def kinds(report: LogReport) -> set[str]:
    return {p.kind for p in report.problems}


def own(pair: Pair, *, against_bob: bool = False) -> LogReport:
    """alice's own log, optionally compared with bob's replica of it."""
    view = LogView.from_store(pair.bob.store, "alice", holder="bob") if against_bob else None
    return verify_log("alice", pair.alice.store, pair.keys, holder="alice", partner_view=view)


def replica(pair: Pair, *, against_alice: bool = False) -> LogReport:
    """bob's replica of alice's log, optionally compared with alice's own copy."""
    view = LogView.from_store(pair.alice.store, "alice", holder="alice") if against_alice else None
    return verify_log("alice", pair.bob.store, pair.keys, holder="bob", partner_view=view)


def resign(raw: bytes, key: SigningKey, **changes: object) -> bytes:
    entry = dataclasses.replace(SignedEntry.decode(raw).entry, **changes)  # type: ignore[arg-type]
    return SignedEntry.sign(entry, key).encode()


def test_untouched_logs_verify(pair: Pair) -> None:
    report = verify_store(
        pair.alice.store,
        pair.keys,
        holder="alice",
        partner_views={
            "alice": [LogView.from_store(pair.bob.store, "alice", holder="bob")],
            "bob": [LogView.from_store(pair.bob.store, "bob", holder="bob")],
        },
    )
    assert report.ok, report.problems
    assert set(report.parties) == {"alice", "bob"}
    assert report.checked_entries == 24
    alice = report.parties["alice"]
    assert (alice.size, alice.heads, alice.cosignatures, alice.cosigners) == (12, 3, 3, ["bob"])
    assert alice.comparisons[0].first_difference is None
    assert alice.root == pair.alice.ledger.root().hex()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["parties"]["bob"]["ok"] is True and data["checked_entries"] == 24
    assert replica(pair, against_alice=True).ok
    assert own(pair, against_bob=True).ok


@pytest.mark.parametrize("where", ["signature", "body"])
def test_a_flipped_byte_is_detected(pair: Pair, where: str) -> None:
    raw = pair.alice.store.entries("alice")[5]
    pos = 10 if where == "signature" else raw.index(b'"stage":"stage-') + len(b'"stage":"stage-')
    bad = bytearray(raw)
    bad[pos] ^= 0x01  # '0'/'1' <-> '1'/'0' in the body: still a well-formed entry
    pair.alice.store.tamper_replace("alice", 5, bytes(bad))
    report = own(pair)
    assert ("bad_signature", 5) in found(report)
    assert ("head_mismatch", 8) in found(report) and ("head_mismatch", 12) in found(report)
    assert ("head_mismatch", 4) not in found(report)  # the head before the change still matches
    compared = own(pair, against_bob=True)
    assert compared.comparisons[0].first_difference == 5
    assert any(p.kind == "altered" and p.seq == 5 and "INVALID" in p.message for p in compared.problems)
    # and from bob's side: his replica is intact, alice's copy is the altered one
    theirs = replica(pair, against_alice=True)
    assert ("altered", 5) in found(theirs)
    assert any(p.holder == "alice" for p in theirs.problems if p.kind == "altered")


def test_garbage_bytes_are_reported_as_altered(pair: Pair) -> None:
    pair.alice.store.tamper_replace("alice", 3, b"\x01" + b"x" * 80)
    report = own(pair)
    assert ("altered", 3) in found(report)
    assert "head_mismatch" in kinds(report)


@pytest.mark.parametrize("signer", ["bob", "mallory"])
def test_a_changed_field_resigned_with_another_key_is_detected(pair: Pair, signer: str) -> None:
    key = pair.bob.key if signer == "bob" else SigningKey.generate()
    raw = pair.alice.store.entries("alice")[6]
    pair.alice.store.tamper_replace("alice", 6, resign(raw, key, data={"messages": 0}))
    report = own(pair, against_bob=True)
    assert ("bad_signature", 6) in found(report)
    assert ("altered", 6) in found(report)
    assert ("head_mismatch", 8) in found(report)


def test_the_owner_rewriting_its_own_log_is_caught_by_cosignatures_and_replicas(pair: Pair) -> None:
    """alice rewrites entry 6 and re-signs it and every head with her own key: only partners can tell."""
    alice = pair.alice
    raws = alice.store.entries("alice")
    raws[6] = resign(raws[6], alice.key, data={"messages": 0})
    rewritten = MemoryLedgerStore()
    rewritten.append("alice", list(enumerate(raws)))
    for size, signer, data in alice.store.cosignatures("alice"):
        rewritten.put_cosignature("alice", size, signer, data)
    Ledger("alice", alice.key, rewritten).head()
    report = verify_log("alice", rewritten, pair.keys, holder="alice")
    assert "bad_signature" not in kinds(report)
    assert ("head_mismatch", 8) in found(report) and ("head_mismatch", 12) in found(report)  # bob's cosignatures
    assert ("head_mismatch", 4) not in found(report)
    compared = verify_log(
        "alice",
        rewritten,
        pair.keys,
        holder="alice",
        partner_view=LogView.from_store(pair.bob.store, "alice", holder="bob"),
    )
    altered = [p for p in compared.problems if p.kind == "altered"]
    assert [p.seq for p in altered] == [6] and "valid" in altered[0].message
    # bob's copy of alice's signed heads disagrees with the rewritten entries too
    assert any(p.kind == "head_mismatch" and p.holder == "bob" for p in compared.problems)


def test_a_deleted_entry_is_detected(pair: Pair) -> None:
    pair.alice.store.tamper_delete("alice", 5)
    report = own(pair)
    assert ("missing", 5) in found(report)
    assert "out_of_order" not in kinds(report)
    assert "head_mismatch" in kinds(report)
    compared = own(pair, against_bob=True)
    assert compared.comparisons[0].missing_here == (5, 6)
    assert sum(1 for p in compared.problems if p.kind == "missing" and "bob's copy has them" in p.message) == 1


def test_a_deleted_last_entry_is_detected(pair: Pair) -> None:
    pair.alice.store.tamper_delete("alice", 11)
    report = own(pair)
    assert ("missing", 11) in found(report)  # the signed head at 12 and bob's cosignature cover it
    compared = own(pair, against_bob=True)
    assert compared.comparisons[0].missing_here == (11, 12)


def test_a_deleted_entry_in_a_replica_is_detected(pair: Pair) -> None:
    pair.bob.store.tamper_delete("alice", 2)
    assert ("missing", 2) in found(replica(pair))
    compared = replica(pair, against_alice=True)
    assert compared.comparisons[0].missing_here == (2, 3)
    assert not own(pair).problems


def test_a_replica_that_is_behind_is_not_a_problem(pair: Pair) -> None:
    pair.alice.ledger.append("job-9", "proposed")
    pair.alice.ledger.head()
    report = replica(pair, against_alice=True)
    assert report.ok, report.problems
    assert report.comparisons[0].missing_here == (12, 13)
    # but the owner's log being shorter than a replica is: entries were removed from it
    short = MemoryLedgerStore()
    short.append("alice", list(enumerate(pair.alice.store.entries("alice")[:10])))
    view = LogView.from_store(pair.bob.store, "alice", holder="bob")
    lost = verify_log("alice", short, pair.keys, holder="alice", partner_view=view)
    assert ("missing", 10) in found(lost)


def test_reordered_entries_are_detected(pair: Pair) -> None:
    pair.alice.store.tamper_swap("alice", 2, 5)
    report = own(pair)
    assert {("out_of_order", 2), ("out_of_order", 5)} <= found(report)
    assert "bad_signature" not in kinds(report)
    assert "head_mismatch" in kinds(report)
    compared = own(pair, against_bob=True)
    assert compared.comparisons[0].first_difference == 2
    assert compared.comparisons[0].missing_here is None
    pair.bob.store.tamper_swap("alice", 7, 8)
    assert {("out_of_order", 7), ("out_of_order", 8)} <= found(replica(pair))


def test_a_forged_entry_claiming_another_party_fails(pair: Pair) -> None:
    """bob writes an entry in alice's name, signs it with his key and slips it into alice's log."""
    raw = pair.alice.store.entries("alice")[11]
    forged = resign(raw, pair.bob.key, seq=12, event="approved")
    pair.alice.store.append("alice", [(12, forged)])
    report = own(pair)
    assert ("bad_signature", 12) in found(report)
    assert "wrong_party" not in kinds(report)


def test_a_genuine_entry_of_another_party_is_out_of_place(pair: Pair) -> None:
    planted = resign(pair.bob.store.entries("bob")[0], pair.bob.key, seq=12)
    pair.alice.store.append("alice", [(12, planted)])
    report = own(pair)
    assert ("wrong_party", 12) in found(report)
    assert "bad_signature" not in kinds(report)


def test_unknown_keys_fail_closed(pair: Pair) -> None:
    report = verify_log("alice", pair.alice.store, {"alice": pair.alice.key.verify_key}, holder="alice")
    assert {p.kind for p in report.problems} == {"bad_cosignature"}  # bob's key unknown
    report = verify_log("alice", pair.alice.store, {}, holder="alice")
    assert "bad_signature" in kinds(report)


def test_bad_heads_and_cosignatures(pair: Pair) -> None:
    store = pair.alice.store
    first = SignedTreeHead.decode(store.heads("alice")[0])
    store.put_head("alice", first.encode())  # an old head after newer ones: the log "shrank"
    assert ("inconsistent", 4) in found(own(pair))
    store.put_head("alice", SignedTreeHead.sign(first.head, pair.bob.key).encode())
    assert ("bad_signature", 4) in found(own(pair))
    forked = dataclasses.replace(first.head, root=b"\x00" * 32)
    store.put_head("alice", SignedTreeHead.sign(forked, pair.alice.key).encode())
    assert {("head_mismatch", 4), ("inconsistent", 4)} <= found(own(pair))
    store.put_head("alice", b"junk")
    assert ("altered", None) in found(own(pair))


def test_tampered_cosignatures(pair: Pair) -> None:
    store = pair.alice.store
    size, signer, data = store.cosignatures("alice")[0]
    cosig = Cosignature.decode(data)
    store.put_cosignature("alice", size, signer, cosig.encode()[:-2] + b"9}")
    assert ("bad_cosignature", size) in found(own(pair))
    forged = Cosignature.sign(
        SignedTreeHead.decode(store.heads("alice")[0]).head, signer="bob", key=pair.alice.key, time=1
    )
    store.put_cosignature("alice", size, signer, forged.encode())
    assert ("bad_cosignature", size) in found(own(pair))
    store.put_cosignature("alice", 8, "bob", cosig.encode())  # bob's cosignature of 4 filed under 8
    assert ("bad_cosignature", 8) in found(own(pair))
    store.put_cosignature("alice", size, signer, b"rubbish")
    assert ("bad_cosignature", size) in found(own(pair))
