"""Where ledger bytes live: the :class:`LedgerStore` protocol and an in-memory implementation.

A node's store holds its own log and its replicas of its partners' logs, each
under the name of the party whose log it is.  The store holds bytes only
(signed entries, signed tree heads, cosignatures); encoding and every check are
:mod:`jointly.audit`'s business, so a store needs no trust: whatever it loses,
alters or reorders, :func:`jointly.audit.verify.verify_log` reports.  The SQL
store in ``jointly.node.storage`` implements the same protocol over plain tables.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from jointly.errors import ConfigError


class LedgerStore(Protocol):
    """Append-only storage of several parties' logs (a node keeps its own log and replicas of partners')."""

    def append(self, party: str, entries: Sequence[tuple[int, bytes]]) -> None:
        """Add ``(seq, signed entry bytes)`` to ``party``'s log, all or nothing.

        The seqs must be ``size(party), size(party) + 1, ...`` in order, else ConfigError (nothing stored).
        """
        ...

    def size(self, party: str) -> int:
        """Number of entries stored for ``party`` (0 for an unknown party)."""
        ...

    def entries(self, party: str, start: int = 0, end: int | None = None) -> list[bytes]:
        """``party``'s entries with ``start <= seq < end`` (``end`` None: to the last), in seq order."""
        ...

    def put_head(self, party: str, head: bytes) -> None:
        """Keep one encoded signed tree head of ``party``'s log (appended after those stored before)."""
        ...

    def heads(self, party: str) -> list[bytes]:
        """Every head stored for ``party``, in the order stored."""
        ...

    def put_cosignature(self, party: str, size: int, signer: str, data: bytes) -> None:
        """Keep ``signer``'s encoded cosignature of ``party``'s head at ``size``; replaces one for the same key."""
        ...

    def cosignatures(self, party: str) -> list[tuple[int, str, bytes]]:
        """``(size, signer, data)`` for every cosignature of ``party``'s heads, by size then signer."""
        ...

    def parties(self) -> list[str]:
        """Every party with entries, heads or cosignatures stored, sorted."""
        ...


class MemoryLedgerStore:
    """A :class:`LedgerStore` in memory, safe to use from several threads (unit tests, benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[bytes]] = {}
        self._heads: dict[str, list[bytes]] = {}
        self._cosigs: dict[str, dict[tuple[int, str], bytes]] = {}

    def append(self, party: str, entries: Sequence[tuple[int, bytes]]) -> None:
        with self._lock:
            log = self._entries.get(party, [])
            expected = len(log)
            for i, (seq, data) in enumerate(entries):
                if seq != expected + i:
                    raise ConfigError(f"ledger of {party!r}: entry seq {seq} given where {expected + i} is next")
                if not isinstance(data, bytes):
                    raise ConfigError(f"ledger of {party!r}: entry {seq} is not bytes")
            if entries:
                log.extend(data for _, data in entries)
                self._entries[party] = log

    def size(self, party: str) -> int:
        with self._lock:
            return len(self._entries.get(party, ()))

    def entries(self, party: str, start: int = 0, end: int | None = None) -> list[bytes]:
        with self._lock:
            return list(self._entries.get(party, [])[start:end])

    def put_head(self, party: str, head: bytes) -> None:
        with self._lock:
            self._heads.setdefault(party, []).append(bytes(head))

    def heads(self, party: str) -> list[bytes]:
        with self._lock:
            return list(self._heads.get(party, ()))

    def put_cosignature(self, party: str, size: int, signer: str, data: bytes) -> None:
        with self._lock:
            self._cosigs.setdefault(party, {})[(size, signer)] = bytes(data)

    def cosignatures(self, party: str) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return [(size, signer, data) for (size, signer), data in sorted(self._cosigs.get(party, {}).items())]

    def parties(self) -> list[str]:
        with self._lock:
            return sorted({*self._entries, *self._heads, *self._cosigs})

    # Test helpers: what an attacker with write access to the storage could do.

    def tamper_replace(self, party: str, seq: int, data: bytes) -> None:
        """Overwrite the stored bytes at position ``seq`` (tests of tamper detection only)."""
        with self._lock:
            self._entries[party][seq] = data

    def tamper_delete(self, party: str, seq: int) -> None:
        """Remove the stored entry at position ``seq`` (tests of tamper detection only)."""
        with self._lock:
            del self._entries[party][seq]

    def tamper_swap(self, party: str, i: int, j: int) -> None:
        """Swap the stored entries at positions ``i`` and ``j`` (tests of tamper detection only)."""
        with self._lock:
            log = self._entries[party]
            log[i], log[j] = log[j], log[i]
