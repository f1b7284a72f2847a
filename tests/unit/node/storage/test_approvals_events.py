"""ApprovalsRepo (one decision per party and job) and EventsRepo (job timelines)."""

from __future__ import annotations

import pytest

from jointly.errors import ConfigError, Conflict, NotFound
from jointly.node.storage import Approval, Storage

from .conftest import job


def test_put_and_read_decisions(storage: Storage) -> None:
    storage.jobs.add(job("j1"))
    storage.approvals.put("j1", "b", "approve", "bob", "fine", b"\x00sig-b", 20.0)
    storage.approvals.put("j1", "a", "approve", "alice", "", b"sig-a", 10.0)
    decisions = storage.approvals.for_job("j1")
    assert [d.party for d in decisions] == ["a", "b"]  # oldest first
    assert decisions[1] == Approval("j1", "b", "approve", "bob", "fine", b"\x00sig-b", 20.0)
    assert decisions[1].to_dict() == {
        "party": "b",
        "decision": "approve",
        "user": "bob",
        "reason": "fine",
        "created": 20.0,
    }
    assert storage.approvals.get("j1", "b") == decisions[1]
    assert storage.approvals.get("j1", "c") is None
    assert storage.approvals.for_job("other") == []


def test_same_decision_is_idempotent_and_a_different_one_conflicts(storage: Storage) -> None:
    storage.jobs.add(job("j1"))
    storage.approvals.put("j1", "b", "reject", "bob", "no", b"s1", 1.0)
    storage.approvals.put("j1", "b", "reject", "bob", "no", b"s2", 2.0)  # no-op: the first is kept
    assert [(d.signature, d.created) for d in storage.approvals.for_job("j1")] == [(b"s1", 1.0)]
    with pytest.raises(Conflict, match="already decided job j1: reject"):
        storage.approvals.put("j1", "b", "approve", "bob", "", b"s3", 3.0)


def test_put_errors(storage: Storage) -> None:
    with pytest.raises(NotFound):
        storage.approvals.put("nope", "b", "approve", "bob", "", b"s", 1.0)
    storage.jobs.add(job("j1"))
    with pytest.raises(ConfigError, match="unknown decision"):
        storage.approvals.put("j1", "b", "maybe", "bob", "", b"s", 1.0)
    storage.approvals.put("j1", "b", "approve", "bob", "", b"s")  # created defaults to now
    assert storage.approvals.for_job("j1")[0].created > 1e9


def test_events_in_order_per_job(storage: Storage) -> None:
    storage.events.add("j1", "job_proposed", "", "by alice", time=5.0)
    storage.events.add("j2", "job_proposed", "", "other job")
    storage.events.add("j1", "stage", "psi", "entered psi", time=4.0)  # order is insertion order, not time
    storage.events.add("", "dataset_registered", "", "node-level event")
    events = storage.events.for_job("j1")
    assert [(e.kind, e.stage, e.message, e.time) for e in events] == [
        ("job_proposed", "", "by alice", 5.0),
        ("stage", "psi", "entered psi", 4.0),
    ]
    assert events[0].to_dict() == {"time": 5.0, "kind": "job_proposed", "stage": "", "message": "by alice"}
    assert [e.kind for e in storage.events.for_job("")] == ["dataset_registered"]
    assert len(storage.events.for_job("j1", limit=1)) == 1
    assert storage.events.for_job("nope") == []
