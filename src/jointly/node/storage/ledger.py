"""The audit ledger's bytes in the node database: a :class:`jointly.audit.store.LedgerStore` over plain tables.

``ledger_entries(party, seq, data)``, ``ledger_heads(id, party, size, data)`` and
``ledger_cosignatures(party, size, signer, data)`` hold encoded signed entries,
signed tree heads and cosignatures of this node's own log and of its replicas of
partners' logs.  The store checks only the sequence numbers of appends; it
trusts nothing it holds, and needs no trust: anyone able to write the database
can change these rows (tests do, with plain SQL or the ``tamper_*`` helpers), and
:mod:`jointly.audit`'s verification reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jointly.errors import ConfigError
from jointly.node.storage.db import Database
from jointly.node.storage.models import Base, LedgerCosignatureRow, LedgerEntryRow, LedgerHeadRow

__all__ = ["SqlLedgerStore"]

_ENTRIES = Base.metadata.tables["ledger_entries"]


class SqlLedgerStore:
    """A ``LedgerStore`` in the node's database; every call is one short transaction, safe from many threads.

    ``size(party)`` counts the rows stored, as the in-memory store does.  ``append``
    checks seqs against the highest stored seq + 1 instead (an index probe, not a
    count): the two differ only after rows were deleted behind the store's back,
    and then every append from a caller that trusts ``size`` fails (``ConfigError``).
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, party: str, entries: Sequence[tuple[int, bytes]]) -> None:
        """Add ``(seq, data)`` pairs to ``party``'s log in one transaction (one batched INSERT), all or nothing."""
        if not entries:
            return
        rows = []
        for seq, data in entries:
            if not isinstance(data, bytes):
                raise ConfigError(f"ledger of {party!r}: entry {seq} is not bytes")
            rows.append({"party": party, "seq": int(seq), "data": data})
        try:
            with self._db.write() as s:
                expected = self._next_seq(s, party)
                for i, row in enumerate(rows):
                    if row["seq"] != expected + i:
                        raise ConfigError(
                            f"ledger of {party!r}: entry seq {row['seq']} given where {expected + i} is next"
                        )
                s.execute(_ENTRIES.insert(), rows)
        except IntegrityError:
            raise ConfigError(
                f"ledger of {party!r}: seq {rows[0]['seq']}.. already stored (concurrent append, or rows removed)"
            ) from None

    @staticmethod
    def _next_seq(s: Session, party: str) -> int:
        """Highest stored seq + 1: one index probe (equals the row count unless rows were deleted)."""
        last = s.scalar(select(func.max(_ENTRIES.c.seq)).where(_ENTRIES.c.party == party))
        return 0 if last is None else int(last) + 1

    @staticmethod
    def _size(s: Session, party: str) -> int:
        return int(s.scalar(select(func.count()).select_from(_ENTRIES).where(_ENTRIES.c.party == party)) or 0)

    def size(self, party: str) -> int:
        with self._db.read() as s:
            return self._size(s, party)

    def entries(self, party: str, start: int = 0, end: int | None = None) -> list[bytes]:
        """``party``'s entries with ``start <= seq < end`` (``end`` None: to the last), in seq order."""
        if start < 0 or (end is not None and end < 0):
            raise ConfigError("ledger ranges start at seq 0")
        query = select(_ENTRIES.c.data).where(_ENTRIES.c.party == party, _ENTRIES.c.seq >= start)
        if end is not None:
            query = query.where(_ENTRIES.c.seq < end)
        with self._db.read() as s:
            rows: Sequence[bytes] = s.scalars(query.order_by(_ENTRIES.c.seq)).all()
            return [bytes(d) for d in rows]

    def put_head(self, party: str, head: bytes, *, size: int | None = None) -> None:
        """Keep one encoded signed tree head (``size``: its tree size, if the caller knows it)."""
        with self._db.write() as s:
            s.add(LedgerHeadRow(party=party, size=size, data=bytes(head)))

    def heads(self, party: str) -> list[bytes]:
        query = select(LedgerHeadRow.data).where(LedgerHeadRow.party == party).order_by(LedgerHeadRow.id)
        with self._db.read() as s:
            return [bytes(d) for d in s.scalars(query)]

    def put_cosignature(self, party: str, size: int, signer: str, data: bytes) -> None:
        """Keep ``signer``'s cosignature of ``party``'s head at ``size``, replacing one for the same key."""
        for _attempt in range(2):
            try:
                with self._db.write() as s:
                    row = s.get(LedgerCosignatureRow, (party, size, signer))
                    if row is None:
                        s.add(LedgerCosignatureRow(party=party, size=size, signer=signer, data=bytes(data)))
                    else:
                        row.data = bytes(data)
                return
            except IntegrityError:
                continue  # stored concurrently by another writer: replace it
        raise ConfigError(f"could not store {signer!r}'s cosignature of {party!r} at size {size}")

    def cosignatures(self, party: str) -> list[tuple[int, str, bytes]]:
        """``(size, signer, data)`` by size then signer."""
        t = LedgerCosignatureRow
        query = select(t.size, t.signer, t.data).where(t.party == party).order_by(t.size, t.signer)
        with self._db.read() as s:
            return [(int(size), str(signer), bytes(data)) for size, signer, data in s.execute(query)]

    def parties(self) -> list[str]:
        """Every party with entries, heads or cosignatures stored, sorted."""
        query = union(select(LedgerEntryRow.party), select(LedgerHeadRow.party), select(LedgerCosignatureRow.party))
        with self._db.read() as s:
            return sorted(str(p) for p in s.scalars(query))

    # Test helpers: what an attacker with write access to the database could do (same as MemoryLedgerStore's).

    def tamper_replace(self, party: str, seq: int, data: bytes) -> None:
        """Overwrite the stored bytes of entry ``seq`` (tests of tamper detection only)."""
        with self._db.write() as s:
            s.execute(update(_ENTRIES).where(_ENTRIES.c.party == party, _ENTRIES.c.seq == seq).values(data=data))

    def tamper_delete(self, party: str, seq: int) -> None:
        """Delete the row of entry ``seq``; later entries keep their seqs (tests of tamper detection only)."""
        with self._db.write() as s:
            s.execute(delete(_ENTRIES).where(_ENTRIES.c.party == party, _ENTRIES.c.seq == seq))

    def tamper_swap(self, party: str, i: int, j: int) -> None:
        """Swap the bytes of entries ``i`` and ``j`` (tests of tamper detection only)."""
        a, b = self.entries(party, i, i + 1), self.entries(party, j, j + 1)
        if a and b:
            self.tamper_replace(party, i, b[0])
            self.tamper_replace(party, j, a[0])


if TYPE_CHECKING:
    from jointly.audit.store import LedgerStore

    def _conforms(store: SqlLedgerStore) -> LedgerStore:  # mypy checks SqlLedgerStore against the protocol
        return store
