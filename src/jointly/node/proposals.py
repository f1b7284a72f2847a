"""Job proposals between nodes: a job starts only after every party approved the same spec.

Flow (every arrow is a mutual-TLS control call; every decision is Ed25519-signed)::

    initiator: propose(spec) -- stores the job pending, signs its own approval
        -> each partner: ``propose``   stores it pending; its policy may approve at once
                                        (the signed approval comes back in the reply)
    any party: approve/reject (REST API or CLI, by a person)
        -> every other party: ``decide``  verified and stored; a rejection ends the job everywhere
    initiator, once it holds an approval from every party:
        -> each partner: ``start``     carries all signed approvals; each node verifies them
                                        all before it launches its side
    pending too long: every node expires the job at the same ``expires_at``.

What each party learns: the spec (which it must see to approve), who approved or
rejected it and why.  A node never runs a job on the word of the initiator alone:
it checks every party's signature itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from jointly.config.job import JobSpec
from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import Conflict, JointlyError, NotFound, ProtocolAborted, ProtocolViolation
from jointly.node.approvals import ApprovalPolicy, Decision, DecisionKind, check_decisions, spec_hash
from jointly.node.records import JobError, JobRecord
from jointly.runtime.states import APPROVED, CANCELLED, EXPIRED, FAILED, PENDING, REJECTED

log = logging.getLogger("jointly.node.proposals")

AUTO_USER = "policy:auto-approve"


class _Jobs(Protocol):
    def add(self, record: JobRecord) -> bool: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def update(self, job_id: str, **changes: Any) -> None: ...
    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> list[JobRecord]: ...


class _Approvals(Protocol):
    def put(
        self, job_id: str, party: str, decision: str, user: str, reason: str, signature: bytes, created: float
    ) -> None: ...
    def for_job(self, job_id: str) -> list[Any]: ...


Caller = Callable[[str, str, object], object]
Recorder = Callable[[str, str, str, dict[str, Any]], None]  # (job_id, event, stage, data) -> ledger + events


class ProposalFlow:
    """The approval state machine of one node."""

    def __init__(
        self,
        *,
        party: str,
        signing_key: SigningKey,
        verify_keys: Mapping[str, VerifyKey],
        jobs: _Jobs,
        approvals: _Approvals,
        call: Caller,
        launch: Callable[[str], None],
        record: Recorder,
        policy: ApprovalPolicy,
    ) -> None:
        self.party = party
        self._key = signing_key
        self._verify_keys = verify_keys
        self._jobs = jobs
        self._approvals = approvals
        self._call = call
        self._launch = launch
        self._record = record
        self.policy = policy
        self._lock = threading.RLock()

    # -- decisions held ------------------------------------------------------------------
    def decisions(self, job_id: str) -> dict[str, Decision]:
        record = self._require(job_id)
        digest = spec_hash(record.spec)
        out: dict[str, Decision] = {}
        for row in self._approvals.for_job(job_id):
            out[row.party] = Decision(
                job_id, digest, row.party, row.decision, row.user, row.reason, float(row.created), bytes(row.signature)
            )
        return out

    def _store(self, decision: Decision) -> None:
        d = decision
        self._approvals.put(d.job_id, d.party, d.decision, d.user, d.reason, d.signature, d.time)

    def _sign(self, record: JobRecord, kind: DecisionKind, user: str, reason: str) -> Decision:
        return Decision.make(
            self._key,
            job_id=record.job_id,
            spec_hash=spec_hash(record.spec),
            party=self.party,
            decision=kind,
            user=user,
            reason=reason,
        )

    def _require(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise NotFound(f"unknown job {job_id!r} on node {self.party!r}")
        return record

    def _partners(self, record: JobRecord) -> list[str]:
        return [p for p in record.spec["parties"] if p != self.party]

    # -- initiator ----------------------------------------------------------------------
    def propose(self, record: JobRecord, spec: JobSpec, *, user: str) -> None:
        """Store ``record`` pending here, sign this party's approval, and propose it to every partner."""
        record.state = PENDING
        record.expires_at = time.time() + spec.approval_timeout_s
        if not self._jobs.add(record):
            raise Conflict(f"job {record.job_id} already exists on node {self.party!r}")
        job_id = record.job_id
        digest = spec_hash(record.spec)
        self._record(job_id, "job_proposed", "", {"spec_sha256": digest, "kind": spec.kind, "by": user})
        own = self._sign(record, "approve", user, "proposed by this party")
        self._store(own)
        self._record(job_id, "job_approved", "", {"spec_sha256": digest, "by": user})
        proposed: list[str] = []
        for peer in self._partners(record):
            payload = {
                "job_id": job_id,
                "spec": record.spec,
                "initiator": self.party,
                "expires_at": record.expires_at,
                "decision": own.to_wire(),
            }
            try:
                reply = self._call(peer, "propose", payload)
            except JointlyError as exc:
                self._abort_proposal(record, proposed, peer, exc)
                raise ProtocolAborted(peer, "propose", f"{type(exc).__name__}: {exc}") from exc
            proposed.append(peer)
            if isinstance(reply, dict) and reply.get("decision") is not None:
                self.receive(peer, {"job_id": job_id, "decision": reply["decision"]}, start_now=False)
        self.maybe_start(job_id)

    def withdraw(self, job_id: str, peers: Iterable[str]) -> None:
        """Ask ``peers`` to cancel ``job_id`` (best effort: one that cannot be reached is logged)."""
        for peer in peers:
            try:
                self._call(peer, "cancel", {"job_id": job_id})
            except JointlyError as exc:
                log.warning("could not cancel job %s on %s: %s", job_id, peer, exc)

    def _abort_proposal(self, record: JobRecord, proposed: list[str], failed: str, exc: Exception) -> None:
        self.withdraw(record.job_id, proposed)
        reason = f"{type(exc).__name__}: {exc}"
        self._jobs.update(
            record.job_id,
            state=FAILED,
            stage="propose",
            error=JobError(failed, "propose", reason),
            finished=time.time(),
        )
        self._record(record.job_id, "job_failed", "propose", {"party": failed, "reason": reason[:200]})

    def maybe_start(self, job_id: str) -> bool:
        """On the initiator: start the job everywhere once every party approved it."""
        with self._lock:
            record = self._require(job_id)
            if record.initiator != self.party or record.state != PENDING:
                return False
            held = self.decisions(job_id)
            parties = list(record.spec["parties"])
            if not all(p in held and held[p].decision == "approve" for p in parties):
                return False
            self._jobs.update(job_id, state=APPROVED)
        wires = [d.to_wire() for d in held.values()]
        started: list[str] = []
        for peer in self._partners(record):
            try:
                self._call(peer, "start", {"job_id": job_id, "decisions": wires})
                started.append(peer)
            except JointlyError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("job %s: %s could not be started: %s", job_id, peer, reason)
                self.withdraw(job_id, started)
                self._jobs.update(
                    job_id, state=FAILED, stage="start", error=JobError(peer, "start", reason), finished=time.time()
                )
                self._record(job_id, "job_failed", "start", {"party": peer, "reason": reason[:200]})
                return False
        self._launch(job_id)
        return True

    # -- partner --------------------------------------------------------------------------
    def on_propose(self, caller: str, payload: Mapping[str, Any], record: JobRecord, spec: JobSpec) -> dict[str, Any]:
        """A partner's proposal reached this node: store it pending; auto-approve if the policy says so."""
        expires = payload.get("expires_at")
        if not isinstance(expires, (int, float)):
            raise ProtocolViolation("a proposal needs a numeric expires_at")
        record.state = PENDING
        record.expires_at = min(float(expires), time.time() + spec.approval_timeout_s)
        if not self._jobs.add(record):
            raise Conflict(f"job {record.job_id} already exists on node {self.party!r}")
        digest = spec_hash(record.spec)
        self._record(record.job_id, "job_received", "", {"spec_sha256": digest, "kind": spec.kind, "from": caller})
        self.receive(caller, {"job_id": record.job_id, "decision": payload.get("decision")}, start_now=False)
        if self.policy.auto_approves(caller, spec.kind):
            own = self._decide_here(record, "approve", AUTO_USER, f"auto-approved by policy for {caller}")
            return {"decision": own.to_wire()}
        return {"decision": None}

    def receive(self, caller: str, payload: Mapping[str, Any], *, start_now: bool = True) -> dict[str, Any]:
        """A party's signed decision arrived (``decide``): verify, store, act on it."""
        job_id = payload.get("job_id")
        if not isinstance(job_id, str):
            raise ProtocolViolation("a decision needs a job id")
        record = self._require(job_id)
        decision = Decision.from_wire(payload.get("decision"))
        if decision.party != caller:
            raise ProtocolViolation(f"{caller!r} sent a decision in the name of {decision.party!r}")
        checked = check_decisions(
            [decision],
            job_id=job_id,
            digest=spec_hash(record.spec),
            parties=record.spec["parties"],
            verify_keys=self._verify_keys,
        )[caller]
        self._store(checked)
        if checked.decision == "reject":
            self._end(record, REJECTED, JobError(caller, "approval", f"rejected by {caller}: {checked.reason}"))
        elif start_now and record.initiator == self.party:
            threading.Thread(target=self._start_safely, args=(job_id,), daemon=True).start()
        return {"ok": True}

    def _start_safely(self, job_id: str) -> None:
        try:
            self.maybe_start(job_id)
        except Exception:
            log.exception("could not start job %s", job_id)

    def on_start(self, caller: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The initiator starts the job: verify every party's approval, then launch this party's side."""
        job_id = payload.get("job_id")
        if not isinstance(job_id, str):
            raise ProtocolViolation("start needs a job id")
        with self._lock:
            record = self._require(job_id)
            if caller != record.initiator:
                raise ProtocolViolation(f"only the initiator {record.initiator!r} starts job {job_id}")
            if record.state != PENDING:
                raise Conflict(f"job {job_id} is {record.state} on {self.party!r}, not pending")
            raw = payload.get("decisions")
            if not isinstance(raw, list):
                raise ProtocolViolation("start needs the list of decisions")
            checked = check_decisions(
                [Decision.from_wire(d) for d in raw],
                job_id=job_id,
                digest=spec_hash(record.spec),
                parties=record.spec["parties"],
                verify_keys=self._verify_keys,
            )
            missing = [p for p in record.spec["parties"] if checked.get(p) is None or checked[p].decision != "approve"]
            if missing:
                raise ProtocolViolation(f"job {job_id} lacks approvals from {missing}")
            for d in checked.values():
                if d.party != self.party:
                    self._store(d)
            self._jobs.update(job_id, state=APPROVED)
        self._launch(job_id)
        return {"started": True}

    # -- this party's people ----------------------------------------------------------------------
    def decide(self, job_id: str, kind: DecisionKind, *, user: str, reason: str) -> Decision:
        """This party approves or rejects a pending job; every other party is told."""
        with self._lock:
            record = self._require(job_id)
            if record.state != PENDING:
                raise Conflict(f"job {job_id} is {record.state}; only pending jobs can be approved or rejected")
            held = self.decisions(job_id).get(self.party)
            if held is not None:
                raise Conflict(f"{self.party!r} already decided job {job_id}: {held.decision}")
            decision = self._decide_here(record, kind, user, reason)
        failures: list[str] = []
        for peer in self._partners(record):
            try:
                self._call(peer, "decide", {"job_id": job_id, "decision": decision.to_wire()})
            except JointlyError as exc:
                failures.append(f"{peer}: {exc}")
        if kind == "approve" and record.initiator == self.party:
            self.maybe_start(job_id)
        if failures:
            log.warning("job %s: could not tell every party of the %s: %s", job_id, kind, "; ".join(failures))
        return decision

    def _decide_here(self, record: JobRecord, kind: DecisionKind, user: str, reason: str) -> Decision:
        decision = self._sign(record, kind, user, reason)
        self._store(decision)
        event = "job_approved" if kind == "approve" else "job_rejected"
        self._record(record.job_id, event, "", {"spec_sha256": decision.spec_hash, "by": user, "reason": reason[:200]})
        if kind == "reject":
            self._end(record, REJECTED, JobError(self.party, "approval", f"rejected by {self.party}: {reason}"))
        return decision

    def cancel_pending(self, job_id: str, by: str) -> bool:
        """Cancel a job that has not started; False if it is not pending here."""
        with self._lock:
            record = self._require(job_id)
            if record.state not in (PENDING, APPROVED) or record.started:
                return False
            self._end(record, CANCELLED, JobError(by, "approval", f"cancelled by {by} before it started"))
            return True

    def expire_due(self, now: float | None = None) -> list[str]:
        """Expire every pending job whose approval window has passed (each node does this on its own)."""
        now = time.time() if now is None else now
        expired = []
        for record in self._jobs.list(state=PENDING, limit=10_000):
            if record.expires_at is not None and record.expires_at <= now:
                with self._lock:
                    current = self._jobs.get(record.job_id)
                    if current is None or current.state != PENDING:
                        continue
                    self._end(current, EXPIRED, JobError(self.party, "approval", "not approved by every party in time"))
                expired.append(record.job_id)
        return expired

    def _end(self, record: JobRecord, state: str, error: JobError) -> None:
        self._jobs.update(record.job_id, state=state, stage="approval", error=error, finished=time.time())
        self._record(record.job_id, f"job_{state}", "approval", {"party": error.party, "reason": error.reason[:200]})
