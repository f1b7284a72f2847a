"""Keyword PIR: values for present keys, None for absent ones, bucket overflow, and bad input."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.protocols.pir import KeywordPirClient, KeywordPirServer
from jointly.protocols.pir.keyword import choose_capacity


def random_items(n: int, value_bytes: int, seed: int = 0) -> dict[bytes, bytes]:
    rnd = random.Random(seed)
    return {rnd.randbytes(rnd.randint(1, 24)): rnd.randbytes(value_bytes) for _ in range(n)}


def lookup(server: KeywordPirServer, client: KeywordPirClient, key: bytes) -> bytes | None:
    queries, state = client.query(key)
    return client.decode(server.answer(queries), state)


@pytest.mark.parametrize(("n", "value_bytes"), [(600, 4), (50, 33), (1, 1)])
def test_present_keys_get_their_values_and_absent_keys_none(n: int, value_bytes: int) -> None:
    items = random_items(n, value_bytes, seed=n)
    server = KeywordPirServer(items, value_bytes=value_bytes)
    client = KeywordPirClient(server.setup())
    for key, value in items.items():
        assert lookup(server, client, key) == value
    rnd = random.Random(1)
    absent = [rnd.randbytes(12) for _ in range(100)] + [b"", b"\x00"]
    for key in absent:
        if key not in items:
            assert lookup(server, client, key) is None


def test_a_batch_of_keys_in_one_pass() -> None:
    items = random_items(200, 16, seed=2)
    server = KeywordPirServer(items, value_bytes=16)
    client = KeywordPirClient(server.setup())
    keys = [*list(items)[:30], b"nope", b"nada"]
    made = [client.query(k) for k in keys]
    answers = server.answer([q for qs, _ in made for q in qs])
    got = [client.decode([a], state) for a, (_, state) in zip(answers, made, strict=True)]
    assert got == [items.get(k) for k in keys]


def test_every_key_costs_one_query_of_the_same_size() -> None:
    items = random_items(100, 8, seed=3)
    client = KeywordPirClient(KeywordPirServer(items, value_bytes=8).setup())
    shapes = {tuple(q.vector.shape) for key in [*items, b"absent", b"x" * 1000] for q in client.query(key)[0]}
    assert len(shapes) == 1


def test_values_are_masked_in_the_table() -> None:
    items = {b"alice": b"A" * 16, b"bob": b"B" * 16}
    server = KeywordPirServer(items, value_bytes=16)
    table = server.pir._db.view(np.uint8) ^ np.uint8(0x80)
    assert b"A" * 16 not in table.T.tobytes()


def test_an_empty_table_answers_none() -> None:
    server = KeywordPirServer({}, value_bytes=4)
    client = KeywordPirClient(server.setup())
    assert lookup(server, client, b"anything") is None


def test_bucket_overflow_is_a_clear_error() -> None:
    items = random_items(40, 4, seed=4)
    with pytest.raises(ConfigError, match="raise capacity or buckets"):
        KeywordPirServer(items, value_bytes=4, buckets=2, capacity=3, max_attempts=2)


def test_a_tight_capacity_rebuilds_with_a_fresh_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    items = random_items(30, 4, seed=5)
    calls = []
    real = KeywordPirServer._build

    def first_overflows(self: KeywordPirServer, salt: bytes, *args: object) -> object:
        calls.append(salt)
        return None if len(calls) == 1 else real(self, salt, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(KeywordPirServer, "_build", first_overflows)
    server = KeywordPirServer(items, value_bytes=4)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert server.salt == calls[1]
    client = KeywordPirClient(server.setup())
    assert all(lookup(server, client, k) == v for k, v in items.items())


def test_capacity_bound_covers_the_observed_maximum_load() -> None:
    rng = np.random.default_rng(6)
    for n, buckets in [(1_000_000, 7600), (1000, 30), (10, 40)]:
        cap = choose_capacity(n, buckets)
        loads = np.bincount(rng.integers(0, buckets, size=n), minlength=buckets)
        assert loads.max() <= cap
        assert cap <= max(3 * n / buckets, 20)


def test_bad_items_and_keys() -> None:
    with pytest.raises(DataError, match="4 bytes"):
        KeywordPirServer({b"a": b"abc"}, value_bytes=4)
    with pytest.raises(DataError, match="bytes"):
        KeywordPirServer({"a": b"abcd"}, value_bytes=4)  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        KeywordPirServer({b"a": b"abcd"}, value_bytes=0)
    with pytest.raises(ConfigError):
        KeywordPirServer({b"a": b"abcd"}, value_bytes=4, digest_bytes=2)
    server = KeywordPirServer({b"a": b"abcd"}, value_bytes=4)
    client = KeywordPirClient(server.setup())
    with pytest.raises(ConfigError):
        client.query("a")  # type: ignore[arg-type]
    _, state = client.query(b"a")
    with pytest.raises(ProtocolViolation):
        client.decode([], state)
    with pytest.raises(ProtocolViolation, match="match"):
        KeywordPirClient(dataclasses.replace(server.setup(), capacity=server.capacity + 1))
    with pytest.raises(ProtocolViolation, match="salt"):
        KeywordPirClient(dataclasses.replace(server.setup(), salt=b""))
