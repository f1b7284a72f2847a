"""The LedgerStore contract as a reusable check: any implementation (memory, SQL) must pass it.

from tests.unit.audit.store_contract import check_ledger_store
check_ledger_store(MyStore(...))   # an empty store
"""

from __future__ import annotations

import pytest

from jointly.audit.store import LedgerStore
from jointly.errors import ConfigError


def check_ledger_store(store: LedgerStore) -> None:
    """Exercise every method of an empty ``store`` and check the documented behaviour."""
    assert store.parties() == [] and store.size("x") == 0 and store.entries("x") == []
    assert store.heads("x") == [] and store.cosignatures("x") == []
    store.append("a", [(0, b"e0"), (1, b"e1")])
    store.append("a", [])
    with pytest.raises(ConfigError):
        store.append("a", [(2, b"e2"), (3, b"e3"), (5, b"e5")])
    assert store.size("a") == 2 and store.entries("a") == [b"e0", b"e1"]  # all or nothing
    with pytest.raises(ConfigError):
        store.append("a", [(1, b"again")])
    with pytest.raises(ConfigError):
        store.append("b", [(1, b"not first")])
    store.append("a", [(2, b"e2")])
    store.append("b", [(0, b"b0")])
    assert store.size("a") == 3 and store.size("b") == 1
    assert store.entries("a", 1) == [b"e1", b"e2"]
    assert store.entries("a", 0, 2) == [b"e0", b"e1"]
    assert store.entries("a", 3) == [] and store.entries("a", 1, 1) == []
    store.put_head("a", b"h1")
    store.put_head("a", b"h0")
    store.put_head("a", b"h1")
    assert store.heads("a") == [b"h1", b"h0", b"h1"]  # in the order stored, duplicates kept
    store.put_cosignature("a", 2, "c", b"x")
    store.put_cosignature("a", 1, "b", b"y")
    store.put_cosignature("a", 2, "b", b"w")
    store.put_cosignature("a", 2, "c", b"z")  # same (party, size, signer): replaces
    assert store.cosignatures("a") == [(1, "b", b"y"), (2, "b", b"w"), (2, "c", b"z")]
    assert store.cosignatures("b") == []
    store.put_head("h-only", b"h")
    store.put_cosignature("c-only", 1, "x", b"c")
    assert store.parties() == ["a", "b", "c-only", "h-only"]
    big = bytes(range(256)) * 32
    store.append("b", [(1, big)])
    assert store.entries("b", 1) == [big]
