"""The approval state machine between three in-process nodes (no network): signatures, starts, rejections."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from jointly.config.job import JobSpec
from jointly.crypto.signing import SigningKey
from jointly.errors import AuthenticationError, Conflict, JointlyError, ProtocolViolation
from jointly.node.approvals import ApprovalPolicy, Decision, spec_hash
from jointly.node.proposals import ProposalFlow
from jointly.node.records import JobRecord

PARTIES = ("bank", "telco", "insurer")


@dataclass
class Row:
    party: str
    decision: str
    user: str
    reason: str
    signature: bytes
    created: float


class Jobs:
    def __init__(self) -> None:
        self.records: dict[str, JobRecord] = {}

    def add(self, record: JobRecord) -> bool:
        if record.job_id in self.records:
            return False
        self.records[record.job_id] = record
        return True

    def get(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)

    def update(self, job_id: str, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self.records[job_id], k, v)

    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        return [r for r in self.records.values() if state is None or r.state == state][offset : offset + limit]


class Approvals:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}

    def put(
        self, job_id: str, party: str, decision: str, user: str, reason: str, signature: bytes, created: float
    ) -> None:
        old = self.rows.get((job_id, party))
        if old is not None and old.decision != decision:
            raise Conflict("changed decision")
        self.rows[(job_id, party)] = Row(party, decision, user, reason, signature, created)

    def for_job(self, job_id: str) -> list[Row]:
        return [r for (j, _), r in self.rows.items() if j == job_id]


class Cluster:
    """Three flows wired so that a control call is a direct method call on the peer."""

    def __init__(self, auto: dict[str, list[str]] | None = None) -> None:
        self.keys = {p: SigningKey.generate() for p in PARTIES}
        verify = {p: k.verify_key for p, k in self.keys.items()}
        self.jobs = {p: Jobs() for p in PARTIES}
        self.launched: dict[str, list[str]] = {p: [] for p in PARTIES}
        self.ledger: dict[str, list[str]] = {p: [] for p in PARTIES}
        self.flows: dict[str, ProposalFlow] = {}
        for p in PARTIES:
            self.flows[p] = ProposalFlow(
                party=p,
                signing_key=self.keys[p],
                verify_keys=verify,
                jobs=self.jobs[p],
                approvals=Approvals(),
                call=self._caller(p),
                launch=self.launched[p].append,
                record=lambda job, event, stage, data, p=p: self.ledger[p].append(event),
                policy=ApprovalPolicy.parse((auto or {}).get(p, [])),
            )

    def _caller(self, me: str) -> Any:
        def call(peer: str, method: str, payload: Any) -> object:
            flow = self.flows[peer]
            if method == "propose":
                spec = JobSpec.from_dict(payload["spec"])
                record = JobRecord(job_id=payload["job_id"], spec=payload["spec"], initiator=me, party=peer)
                return flow.on_propose(me, payload, record, spec)
            if method == "decide":
                return flow.receive(me, payload, start_now=False) and flow.maybe_start(payload["job_id"])
            if method == "start":
                return flow.on_start(me, payload)
            if method == "cancel":
                return flow.cancel_pending(payload["job_id"], me)
            raise AssertionError(method)

        return call

    def propose(self, job_id: str = "j1") -> str:
        spec = JobSpec.from_dict(
            {"name": "overlap", "kind": "psi", "parties": {p: {"data": f"{p}.csv"} for p in PARTIES}}
        )
        record = JobRecord(job_id=job_id, spec=spec.to_dict(), initiator="bank", party="bank")
        self.flows["bank"].propose(record, spec, user="alice")
        return job_id

    def states(self, job_id: str) -> dict[str, str]:
        return {p: self.jobs[p].records[job_id].state for p in PARTIES}


def test_starts_everywhere_only_after_every_party_approved() -> None:
    c = Cluster()
    job = c.propose()
    assert c.states(job) == dict.fromkeys(PARTIES, "pending")
    c.flows["telco"].decide(job, "approve", user="tom", reason="")
    assert c.states(job) == dict.fromkeys(PARTIES, "pending")
    assert not any(c.launched.values())
    c.flows["insurer"].decide(job, "approve", user="ida", reason="fine")
    assert c.launched == {p: [job] for p in PARTIES}
    assert c.states(job) == dict.fromkeys(PARTIES, "approved")
    assert "job_proposed" in c.ledger["bank"] and "job_received" in c.ledger["telco"]


def test_policy_auto_approves_named_partners_and_kinds() -> None:
    c = Cluster(auto={"telco": ["bank:psi"], "insurer": ["*"]})
    job = c.propose()
    assert c.launched == {p: [job] for p in PARTIES}
    c2 = Cluster(auto={"telco": ["bank:secureboost"], "insurer": ["*"]})
    job = c2.propose()
    assert c2.states(job)["telco"] == "pending" and not c2.launched["bank"]


def test_a_rejection_ends_the_job_on_every_node() -> None:
    c = Cluster()
    job = c.propose()
    c.flows["insurer"].decide(job, "reject", user="ida", reason="no consent")
    assert c.states(job) == dict.fromkeys(PARTIES, "rejected")
    for p in PARTIES:
        err = c.jobs[p].records[job].error
        assert err is not None and err.party == "insurer" and "no consent" in err.reason
    with pytest.raises(Conflict):
        c.flows["telco"].decide(job, "approve", user="tom", reason="")


def test_forged_and_mismatched_decisions_are_refused() -> None:
    c = Cluster()
    job = c.propose()
    digest = spec_hash(c.jobs["telco"].records[job].spec)
    # insurer's approval signed with telco's key
    forged = Decision.make(c.keys["telco"], job_id=job, spec_hash=digest, party="insurer", decision="approve", user="x")
    with pytest.raises(AuthenticationError):
        c.flows["bank"].receive("insurer", {"job_id": job, "decision": forged.to_wire()})
    # telco relaying a decision in insurer's name
    with pytest.raises(ProtocolViolation):
        c.flows["bank"].receive("telco", {"job_id": job, "decision": forged.to_wire()})
    # an approval of a different spec
    other = Decision.make(
        c.keys["insurer"], job_id=job, spec_hash="0" * 64, party="insurer", decision="approve", user="x"
    )
    with pytest.raises(ProtocolViolation):
        c.flows["bank"].receive("insurer", {"job_id": job, "decision": other.to_wire()})
    assert c.states(job) == dict.fromkeys(PARTIES, "pending")


def test_start_without_every_signed_approval_is_refused() -> None:
    c = Cluster()
    job = c.propose()
    held = c.flows["bank"].decisions(job)
    with pytest.raises(ProtocolViolation, match="lacks approvals"):
        c.flows["telco"].on_start("bank", {"job_id": job, "decisions": [d.to_wire() for d in held.values()]})
    with pytest.raises(ProtocolViolation, match="initiator"):
        c.flows["telco"].on_start("insurer", {"job_id": job, "decisions": []})
    assert not c.launched["telco"]


def test_pending_jobs_expire_and_cannot_be_approved_afterwards() -> None:
    c = Cluster()
    job = c.propose()
    later = time.time() + 25 * 3600
    for p in PARTIES:
        assert c.flows[p].expire_due(later) == [job]
    assert c.states(job) == dict.fromkeys(PARTIES, "expired")
    with pytest.raises(JointlyError):
        c.flows["telco"].decide(job, "approve", user="tom", reason="")


def test_policy_rules_parse() -> None:
    policy = ApprovalPolicy.parse(["bank:psi,secureboost", "*:psi"])
    assert policy.auto_approves("bank", "secureboost")
    assert policy.auto_approves("telco", "psi")
    assert not policy.auto_approves("telco", "secureboost")
    assert not ApprovalPolicy.parse([]).auto_approves("bank", "psi")
