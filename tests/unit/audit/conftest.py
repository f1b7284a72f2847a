"""Two parties, each with its own log and a replica of the other's, pushed and cosigned as nodes would."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from jointly.audit.ledger import Ledger
from jointly.audit.replica import Replica
from jointly.audit.store import MemoryLedgerStore
from jointly.crypto.signing import SigningKey, VerifyKey


class Clock:
    def __init__(self) -> None:
        self._t = itertools.count(1_700_000_000)

    def __call__(self) -> float:
        return float(next(self._t))


@dataclass
class Node:
    name: str
    key: SigningKey
    store: MemoryLedgerStore
    ledger: Ledger
    replica: Replica


@dataclass
class Pair:
    alice: Node
    bob: Node

    @property
    def keys(self) -> dict[str, VerifyKey]:
        return {"alice": self.alice.key.verify_key, "bob": self.bob.key.verify_key}

    def push(self, owner: Node, partner: Node) -> None:
        """``owner`` sends its update to ``partner``'s replica and stores the cosignature it gets back."""
        update = owner.ledger.update_since(partner.replica.held(owner.name))
        cosig = partner.replica.accept(owner.name, owner.key.verify_key, update.entries, update.head, update.proof)
        owner.ledger.add_cosignature(cosig, partner.key.verify_key)


def make_node(name: str, clock: Clock) -> Node:
    key = SigningKey.generate()
    store = MemoryLedgerStore()
    return Node(name, key, store, Ledger(name, key, store, clock=clock), Replica(name, key, store, clock=clock))


def write_job(node: Node, job: str, events: int = 4) -> None:
    node.ledger.append(job, "proposed", data={"spec_sha256": "0" * 64, "parties": ["alice", "bob"]})
    for i in range(events - 2):
        node.ledger.append(job, "stage", f"stage-{i}", {"sent_sha256": f"{i:064x}", "messages": i})
    node.ledger.append(job, "finished", data={"ok": True})


@pytest.fixture
def pair() -> Pair:
    """alice and bob with 12 entries each, pushed to each other three times (so several cosigned heads)."""
    clock = Clock()
    p = Pair(make_node("alice", clock), make_node("bob", clock))
    for job in ("job-1", "job-2", "job-3"):
        write_job(p.alice, job)
        write_job(p.bob, job)
        p.push(p.alice, p.bob)
        p.push(p.bob, p.alice)
    return p
