"""SqlLedgerStore: the audit LedgerStore protocol over plain tables, behaving like MemoryLedgerStore."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from jointly.audit.store import LedgerStore, MemoryLedgerStore
from jointly.errors import ConfigError
from jointly.node.storage import SqlLedgerStore, Storage


def entries(n: int, start: int = 0) -> list[tuple[int, bytes]]:
    return [(i, f"entry-{i}".encode()) for i in range(start, start + n)]


def test_it_is_a_ledger_store(storage: Storage) -> None:
    store: LedgerStore = storage.ledger
    assert isinstance(store, SqlLedgerStore)


def test_append_size_and_ranges(storage: Storage) -> None:
    ledger = storage.ledger
    assert ledger.size("a") == 0 and ledger.entries("a") == []
    ledger.append("a", entries(3))
    ledger.append("a", entries(2, start=3))
    ledger.append("b", entries(1))
    ledger.append("a", [])
    assert ledger.size("a") == 5 and ledger.size("b") == 1
    assert ledger.entries("a") == [f"entry-{i}".encode() for i in range(5)]
    assert ledger.entries("a", 1, 3) == [b"entry-1", b"entry-2"]
    assert ledger.entries("a", 4) == [b"entry-4"]
    assert ledger.entries("a", 5, 9) == []
    with pytest.raises(ConfigError):
        ledger.entries("a", -1)


def test_wrong_seq_stores_nothing(storage: Storage) -> None:
    ledger = storage.ledger
    ledger.append("a", entries(2))
    with pytest.raises(ConfigError, match="seq 3 given where 2 is next"):
        ledger.append("a", entries(2, start=3))
    with pytest.raises(ConfigError, match="seq 4 given where 3 is next"):
        ledger.append("a", [(2, b"x"), (4, b"y")])
    with pytest.raises(ConfigError, match="not bytes"):
        ledger.append("a", [(2, "text")])  # type: ignore[list-item]
    assert ledger.size("a") == 2


def test_thousands_of_entries_in_one_append(storage: Storage) -> None:
    ledger = storage.ledger
    ledger.append("a", entries(5000))
    ledger.append("a", entries(3000, start=5000))
    assert ledger.size("a") == 8000
    got = ledger.entries("a", 4998, 5002)
    assert got == [b"entry-4998", b"entry-4999", b"entry-5000", b"entry-5001"]


def test_heads_cosignatures_and_parties(storage: Storage) -> None:
    ledger = storage.ledger
    ledger.put_head("a", b"head-2")
    ledger.put_head("a", b"head-1")
    ledger.put_head("c", b"head-c", size=7)
    assert ledger.heads("a") == [b"head-2", b"head-1"]  # in the order stored
    ledger.put_cosignature("a", 5, "c", b"c5")
    ledger.put_cosignature("a", 2, "d", b"d2")
    ledger.put_cosignature("a", 2, "b", b"b2")
    ledger.put_cosignature("a", 2, "b", b"b2-new")  # same key: replaced
    assert ledger.cosignatures("a") == [(2, "b", b"b2-new"), (2, "d", b"d2"), (5, "c", b"c5")]
    ledger.append("e", entries(1))
    ledger.put_cosignature("f", 1, "a", b"x")
    assert ledger.parties() == ["a", "c", "e", "f"]


def test_rows_can_be_tampered_with_plain_sql(storage: Storage) -> None:
    ledger = storage.ledger
    ledger.append("a", entries(4))
    with storage.db.write() as s:
        s.execute(text("UPDATE ledger_entries SET data = :d WHERE party = 'a' AND seq = 1"), {"d": b"forged"})
        s.execute(text("DELETE FROM ledger_entries WHERE party = 'a' AND seq = 2"))
    assert ledger.entries("a") == [b"entry-0", b"forged", b"entry-3"]
    assert ledger.size("a") == 3
    with pytest.raises(ConfigError):
        ledger.append("a", [(3, b"collides with the stored seq 3")])


@pytest.mark.parametrize("make_memory", [True, False])
def test_same_behaviour_as_the_memory_store(storage: Storage, make_memory: bool) -> None:
    store: MemoryLedgerStore | SqlLedgerStore = MemoryLedgerStore() if make_memory else storage.ledger
    store.append("a", entries(6))
    store.append("b", entries(2))
    store.put_head("a", b"h")
    store.put_cosignature("a", 6, "b", b"cs")
    store.tamper_replace("a", 1, b"x")
    store.tamper_swap("a", 2, 3)
    store.tamper_delete("a", 5)
    observed = (
        store.size("a"),
        store.entries("a"),
        store.entries("a", 1, 3),
        store.heads("a"),
        store.cosignatures("a"),
        store.parties(),
    )
    assert observed == (
        5,
        [b"entry-0", b"x", b"entry-3", b"entry-2", b"entry-4"],
        [b"x", b"entry-3"],
        [b"h"],
        [(6, "b", b"cs")],
        ["a", "b"],
    )
