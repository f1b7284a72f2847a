"""A job's trail on one node: its event timeline and its entries in the party's signed audit ledger.

Every job event this party takes part in (proposed, approved, started, each
protocol stage, finished, failed, model stored, prediction served) becomes one
ledger entry signed by this party.  For each protocol stage the entry holds,
per partner, the SHA-256 digest of the messages sent to and received from that
partner (each message is reduced to its tag and the SHA-256 of its bytes, the
list sorted), so a verifier holding two parties' replicas can check that what A
says it sent B is what B says it received.  No message content, raw value or
file content enters the ledger: only hashes, counts, names and short reasons.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("jointly.node.trail")


class _Ledger(Protocol):
    def append(self, job_id: str, event: str, stage: str = "", data: dict[str, Any] | None = None) -> object: ...


class _Events(Protocol):
    def add(self, job_id: str, kind: str, stage: str, message: str) -> None: ...


class Trail:
    """Writes job events to the node's event table and its audit ledger."""

    def __init__(self, ledger: _Ledger, events: _Events) -> None:
        self._ledger = ledger
        self._events = events
        self._lock = threading.Lock()

    def record(self, job_id: str, event: str, stage: str = "", data: dict[str, Any] | None = None) -> None:
        """Append one ledger entry and one timeline event."""
        data = dict(data or {})
        with self._lock:
            self._ledger.append(job_id, event, stage, data)
        summary = ", ".join(f"{k}={v}" for k, v in data.items() if not k.endswith("sha256") and "." not in k)
        self._events.add(job_id, event, stage, summary[:500])

    def timeline(self, job_id: str, kind: str, stage: str, message: str) -> None:
        """A timeline event only (progress notes that need no signature)."""
        self._events.add(job_id, kind, stage, message[:500])


class MessageDigests:
    """Collects, per top-level protocol stage and partner, what was sent and received (as hashes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order: list[str] = []
        self._items: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        self._bytes: dict[tuple[str, str], int] = defaultdict(int)

    def __call__(self, direction: str, peer: str, tag: str, data: bytes) -> None:
        stage = tag.split("/", 1)[0] or "job"
        item = f"{tag}:{hashlib.sha256(data).hexdigest()}"
        with self._lock:
            if stage not in self._order:
                self._order.append(stage)
            self._items[(stage, direction, peer)].append(item)
            self._bytes[(stage, direction)] += len(data)

    def stages(self) -> list[tuple[str, dict[str, Any]]]:
        """``(stage, ledger data)`` for every stage seen, in the order first seen."""
        with self._lock:
            out = []
            for stage in self._order:
                data: dict[str, Any] = {"bytes_sent": self._bytes[(stage, "sent")]}
                data["bytes_received"] = self._bytes[(stage, "received")]
                for (s, direction, peer), items in sorted(self._items.items()):
                    if s != stage:
                        continue
                    digest = hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()
                    data[f"{direction}.{peer}.sha256"] = digest
                    data[f"{direction}.{peer}.messages"] = len(items)
                out.append((stage, data))
            return out


def file_digests(directory: Path, *, limit: int = 32) -> dict[str, str]:
    """SHA-256 of each output file (by relative path), for the ledger; contents never enter it."""
    out: dict[str, str] = {}
    if not directory.is_dir():
        return out
    for path in sorted(p for p in directory.rglob("*") if p.is_file())[:limit]:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[f"file.{path.relative_to(directory).as_posix()}.sha256"] = h.hexdigest()
    return out


def cross_check_stages(stage_entries: dict[str, list[tuple[str, str, dict[str, Any]]]]) -> list[tuple[str, str]]:
    """Compare what each party says it sent another with what that party says it received.

    ``stage_entries`` maps a log's owner to its ``stage`` entries as ``(job_id, stage, data)``.
    Returns ``(party, problem)`` pairs for every job stage where party A's digest of the
    messages it sent B differs from B's digest of the messages it received from A
    (a message altered in flight, or a log that lies about the protocol run).
    """
    index = {(owner, job, stage): data for owner, rows in stage_entries.items() for job, stage, data in rows}
    problems = []
    for (owner, job, stage), data in sorted(index.items()):
        for key, digest in sorted(data.items()):
            if not (key.startswith("sent.") and key.endswith(".sha256")):
                continue
            peer = key[len("sent.") : -len(".sha256")]
            theirs = index.get((peer, job, stage))
            if theirs is None:
                continue
            other = theirs.get(f"received.{owner}.sha256")
            if other is not None and other != digest:
                problems.append(
                    (
                        owner,
                        f"message_mismatch: job {job} stage {stage}: the messages {owner} recorded sending to "
                        f"{peer} differ from those {peer} recorded receiving",
                    )
                )
    return problems
