"""Job states shared by nodes and the clients that follow them.

``pending`` (waiting for every party's approval) -> ``approved`` -> ``running``
-> ``succeeded`` | ``failed`` | ``cancelled``; a pending job may instead end
``rejected`` (a party said no), ``expired`` (not approved in time) or ``cancelled``.
"""

from __future__ import annotations

PENDING = "pending"
APPROVED = "approved"
ACCEPTED = "accepted"  # records written before approvals existed
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
REJECTED = "rejected"
EXPIRED = "expired"

TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, REJECTED, EXPIRED})
STATES = (PENDING, APPROVED, ACCEPTED, RUNNING, SUCCEEDED, FAILED, CANCELLED, REJECTED, EXPIRED)
