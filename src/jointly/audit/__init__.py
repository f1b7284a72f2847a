"""Tamper-evident audit ledger: per-party signed Merkle logs (RFC 9162 style), replicated and cosigned.

Modules, one concern each:

``merkle``    RFC 9162 2.1 hashing, tree heads, inclusion and consistency proofs; incremental tree
``codec``     the canonical JSON every signed structure is encoded in
``entry``     ledger entries (one job event each), their limits, and their signatures
``heads``     signed tree heads and partners' cosignatures
``store``     the LedgerStore protocol (bytes only) and an in-memory store
``ledger``    a party's own log: append, sign heads, prove, take partners' cosignatures
``replica``   copies of partners' logs: accept only updates that extend what was held, then cosign
``verify``    check stored logs and compare copies; structured, JSON-ready reports
``problems``  the problem kinds and the error a refused update raises
"""

from jointly.audit.entry import LedgerEntry, SignedEntry
from jointly.audit.heads import Cosignature, SignedTreeHead, TreeHead
from jointly.audit.ledger import Ledger, LedgerUpdate
from jointly.audit.merkle import MerkleTree, verify_consistency, verify_inclusion
from jointly.audit.problems import LedgerRejected, Problem
from jointly.audit.replica import Replica
from jointly.audit.store import LedgerStore, MemoryLedgerStore
from jointly.audit.verify import LogReport, LogView, VerificationReport, verify_log, verify_store

__all__ = [
    "Cosignature",
    "Ledger",
    "LedgerEntry",
    "LedgerRejected",
    "LedgerStore",
    "LedgerUpdate",
    "LogReport",
    "LogView",
    "MemoryLedgerStore",
    "MerkleTree",
    "Problem",
    "Replica",
    "SignedEntry",
    "SignedTreeHead",
    "TreeHead",
    "VerificationReport",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
    "verify_store",
]
