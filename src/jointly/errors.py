"""One exception tree for the whole platform.

Every error a user can meet is a :class:`JointlyError`.  The edges (CLI, node,
REST API) map them to exit codes and HTTP statuses; inside, code raises the most
precise subclass and never a bare ``Exception``.
"""

from __future__ import annotations


class JointlyError(Exception):
    """Root of every error jointly raises on purpose."""

    exit_code: int = 1
    http_status: int = 500


class ConfigError(JointlyError):
    """A job spec, federation file or parameter is invalid."""

    exit_code = 2
    http_status = 400


class NotFound(ConfigError):
    """A named thing (job, dataset, model, user) does not exist here."""

    exit_code = 2
    http_status = 404


class PermissionDenied(JointlyError):
    """The caller is known but its role may not do this (an auditor starting a job, say)."""

    exit_code = 9
    http_status = 403


class Conflict(ConfigError):
    """The request clashes with the current state (approving a job that already ended, a duplicate name)."""

    http_status = 409


class DataError(JointlyError):
    """A party's input table is unusable.  Names the file, the row and the problem."""

    exit_code = 3
    http_status = 422

    def __init__(self, path: str, problem: str, *, row: int | None = None) -> None:
        self.path = str(path)
        self.row = row
        self.problem = problem
        where = f"{self.path}, row {row}" if row is not None else self.path
        super().__init__(f"{where}: {problem}")


class CodecError(JointlyError):
    """Bytes from a peer could not be decoded into an allowed value."""

    exit_code = 4
    http_status = 400


class MessageTooLarge(CodecError):
    """A message is over the per-message size limit."""


class TransportError(JointlyError):
    """The network between parties failed."""

    exit_code = 5
    http_status = 502


class AuthenticationError(TransportError):
    """A peer could not prove it is who it claims to be, or is not in the job."""

    http_status = 403


class PeerTimeout(TransportError):
    """No message arrived from ``peer`` under ``tag`` in time."""

    def __init__(self, peer: str, tag: str, timeout: float) -> None:
        self.peer = peer
        self.tag = tag
        self.timeout = timeout
        super().__init__(f"timed out after {timeout:g}s waiting for {peer!r} on tag {tag!r}")


class ProtocolAborted(JointlyError):
    """A joint job stopped because ``party`` failed (crashed, disconnected or aborted) in ``stage``."""

    exit_code = 6
    http_status = 409

    def __init__(self, party: str, stage: str, reason: str) -> None:
        self.party = party
        self.stage = stage
        self.reason = reason
        super().__init__(f"party {party!r} failed in stage {stage!r}: {reason}")


class PeerDropped(ProtocolAborted):
    """A peer this party agreed to do without (a federated-learning client) failed or disconnected.

    Raised only for peers named in :meth:`Channel.tolerate <jointly.channel.Channel.tolerate>`: the
    job goes on without them, and waiting for or sending to them raises this at once.
    """


class ProtocolViolation(JointlyError):
    """A peer sent a message the protocol does not allow (wrong type, size or content)."""

    exit_code = 7
    http_status = 400


class KeyMismatch(JointlyError):
    """Values under different keys were combined."""


class BudgetExhausted(JointlyError):
    """A differential-privacy budget would be overspent."""

    exit_code = 8
    http_status = 409
