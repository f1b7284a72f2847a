"""Per-job approvals: each party's signed decision to let a job use its data, and the node's policy.

A job runs only when every party has approved the *same* job spec: a
:class:`Decision` binds the party, the job id and the SHA-256 of the spec's
canonical JSON, and is signed with the party's Ed25519 key, so a partner (or an
auditor, later) can check that party X approved exactly this job and no node
can forge another party's approval.  Decisions travel between nodes in the
``propose``/``decide``/``start`` control calls; each node verifies every
decision it receives against the federation's verify keys before storing it.

:class:`ApprovalPolicy` lets an operator approve named partners' jobs of named
kinds automatically (the demos use it); everything else waits for a person.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jointly.audit.codec import canonical_json
from jointly.crypto.signing import SigningKey, VerifyKey
from jointly.errors import AuthenticationError, ConfigError, ProtocolViolation

DecisionKind = Literal["approve", "reject"]
_DOMAIN = b"jointly/approval/v1\x00"
MAX_REASON = 500


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a job spec's canonical JSON: what every party approves."""
    return hashlib.sha256(canonical_json(dict(spec))).hexdigest()


@dataclass(frozen=True)
class Decision:
    """One party's signed approval or rejection of one job spec."""

    job_id: str
    spec_hash: str
    party: str
    decision: DecisionKind
    user: str
    reason: str
    time: float
    signature: bytes = b""

    def _payload(self) -> bytes:
        body = {
            "job_id": self.job_id,
            "spec_hash": self.spec_hash,
            "party": self.party,
            "decision": self.decision,
            "user": self.user,
            "reason": self.reason,
            "time": self.time,
        }
        return _DOMAIN + canonical_json(body)

    @classmethod
    def make(
        cls,
        key: SigningKey,
        *,
        job_id: str,
        spec_hash: str,
        party: str,
        decision: DecisionKind,
        user: str,
        reason: str = "",
    ) -> Decision:
        unsigned = cls(job_id, spec_hash, party, decision, user[:128], reason[:MAX_REASON], round(time.time(), 3))
        return cls(**{**unsigned.__dict__, "signature": key.sign(unsigned._payload())})

    def verify(self, key: VerifyKey) -> None:
        """AuthenticationError unless ``key`` (the party's verify key) signed exactly this decision."""
        try:
            key.verify(self._payload(), self.signature)
        except AuthenticationError:
            raise AuthenticationError(
                f"the {self.decision} of job {self.job_id} claimed by {self.party!r} is not signed by it"
            ) from None

    def to_wire(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "signature"}, "signature": self.signature}

    @classmethod
    def from_wire(cls, raw: object) -> Decision:
        """Strictly decode a peer's decision (types and sizes checked; the signature is checked separately)."""
        fields = ("job_id", "spec_hash", "party", "decision", "user", "reason", "time", "signature")
        if not isinstance(raw, dict) or set(raw) != set(fields):
            raise ProtocolViolation("a decision must be a mapping with exactly the fields " + ", ".join(fields))
        text = ("job_id", "spec_hash", "party", "user", "reason")
        if not all(isinstance(raw[k], str) and len(raw[k]) <= MAX_REASON for k in text):
            raise ProtocolViolation("a decision's text fields must be short strings")
        if raw["decision"] not in ("approve", "reject"):
            raise ProtocolViolation(f"unknown decision {raw['decision']!r}")
        if not isinstance(raw["time"], (int, float)) or not isinstance(raw["signature"], bytes):
            raise ProtocolViolation("a decision needs a numeric time and a byte signature")
        return cls(**{k: raw[k] for k in fields if k != "time"}, time=float(raw["time"]))

    def summary(self) -> dict[str, Any]:
        """JSON-ready view for the API (no signature bytes)."""
        return {
            "party": self.party,
            "decision": self.decision,
            "user": self.user,
            "reason": self.reason,
            "created": self.time,
        }


def check_decisions(
    decisions: Iterable[Decision],
    *,
    job_id: str,
    digest: str,
    parties: Iterable[str],
    verify_keys: Mapping[str, VerifyKey],
) -> dict[str, Decision]:
    """Verify decisions for one job: right job, right spec, a job party, and signed by that party."""
    allowed = set(parties)
    out: dict[str, Decision] = {}
    for d in decisions:
        if d.job_id != job_id or d.spec_hash != digest:
            raise ProtocolViolation(f"a decision by {d.party!r} is for another job or another version of the spec")
        if d.party not in allowed:
            raise ProtocolViolation(f"{d.party!r} is not a party of job {job_id}")
        key = verify_keys.get(d.party)
        if key is None:
            raise ConfigError(f"no verify key for party {d.party!r}")
        d.verify(key)
        out[d.party] = d
    return out


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which partners' jobs this node approves without asking a person.

    ``rules`` maps a partner name (or ``*`` for any member of the federation) to
    the job kinds approved automatically (``*`` for every kind).
    """

    rules: Mapping[str, frozenset[str]]

    @classmethod
    def parse(cls, items: Iterable[str]) -> ApprovalPolicy:
        """From ``PARTNER[:KIND,KIND]`` strings, e.g. ``bank:psi,secureboost`` or ``*``."""
        rules: dict[str, set[str]] = {}
        for item in items:
            partner, _, kinds = item.strip().partition(":")
            if not partner:
                raise ConfigError(f"auto-approve rule {item!r} must be PARTNER[:KIND,KIND]")
            names = {k.strip() for k in kinds.split(",") if k.strip()} or {"*"}
            rules.setdefault(partner, set()).update(names)
        return cls({p: frozenset(k) for p, k in rules.items()})

    def auto_approves(self, initiator: str, kind: str) -> bool:
        for partner in (initiator, "*"):
            kinds = self.rules.get(partner)
            if kinds and ("*" in kinds or kind in kinds):
                return True
        return False

    def describe(self) -> list[str]:
        return [f"{p}:{','.join(sorted(k))}" for p, k in sorted(self.rules.items())]
