"""Keyword PIR sessions over the in-memory channel: results, cached setups, and what crosses the wire."""

from __future__ import annotations

import random

import pytest

from jointly.channel import Channel
from jointly.channel.codec import decode
from jointly.channel.memory import MemoryHub
from jointly.errors import ProtocolViolation
from jointly.protocols.pir import KeywordPirClient, KeywordPirServer, run_pir_client, run_pir_server
from jointly.protocols.pir.protocol import BATCH, VERSION, Hello

ITEMS = {f"id-{i}".encode(): f"reason{i % 7:02d}".encode() for i in range(500)}


@pytest.fixture(scope="module")
def server() -> KeywordPirServer:
    return KeywordPirServer(ITEMS, value_bytes=8)


def session(
    server: KeywordPirServer, keys: list[bytes], *, client: KeywordPirClient | None = None, limit: int | None = None
) -> tuple[dict[str, object], MemoryHub]:
    hub = MemoryHub(["bank", "registry"])
    out = hub.run(
        {
            "registry": lambda ch: run_pir_server(ch, "bank", server, queries=limit),
            "bank": lambda ch: run_pir_client(ch, "registry", keys, client=client),
        },
        timeout=60,
    )
    return out, hub  # type: ignore[return-value]


def test_a_session_returns_values_and_nones_over_several_batches(server: KeywordPirServer) -> None:
    rnd = random.Random(0)
    keys = [*rnd.sample(list(ITEMS), BATCH + 20), b"id-9999", b"stranger", b"id-1"]
    out, _ = session(server, keys)
    assert out["registry"] == len(set(keys))
    assert out["bank"] == {k: ITEMS.get(k) for k in keys}


def test_no_keys(server: KeywordPirServer) -> None:
    out, _ = session(server, [])
    assert out == {"registry": 0, "bank": {}}


def test_a_cached_setup_is_not_sent_again(server: KeywordPirServer) -> None:
    _, first = session(server, [b"id-3"])
    client = KeywordPirClient(server.setup())
    out, second = session(server, [b"id-3", b"id-4"], client=client)
    assert out["bank"] == {b"id-3": ITEMS[b"id-3"], b"id-4": ITEMS[b"id-4"]}
    setup_msgs = [data for src, _, tag, data in second.log if tag.endswith("/setup")]
    assert len(setup_msgs) == 1 and decode(setup_msgs[0]) is None
    full = [data for src, _, tag, data in first.log if tag.endswith("/setup")]
    assert len(full[0]) > server.setup().pir.hint.nbytes


def test_the_server_sees_the_same_tags_and_sizes_for_any_keys(server: KeywordPirServer) -> None:
    client = KeywordPirClient(server.setup())
    views = []
    for keys in ([b"id-1", b"id-2", b"id-3"], [b"absent-a", b"absent-b", b"id-400"]):
        _, hub = session(server, keys, client=client)
        views.append([(tag, len(data)) for src, _, tag, data in hub.log if src == "bank"])
    assert views[0] == views[1]


def test_more_keys_than_allowed_is_refused(server: KeywordPirServer) -> None:
    with pytest.raises(ProtocolViolation, match="more than the 2 allowed"):
        session(server, [b"a", b"b", b"c"], limit=2)


def fake_client(messages: list[tuple[str, object]]) -> object:
    def run(ch: Channel) -> None:
        sub = ch.sub("pir")
        for tag, value in messages:
            sub.send("registry", tag, value)
            if tag == "hello":
                sub.recv("registry", "setup")

    return run


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([("hello", {"count": 1})], "hello"),
        ([("hello", Hello(version=VERSION + 1, setup_digest=b"", count=1))], "hello"),
        ([("hello", Hello(version=VERSION, setup_digest=b"", count=-1))], "number of keys"),
        ([("hello", Hello(version=VERSION, setup_digest="x", count=1))], "digest"),  # type: ignore[arg-type]
        ([("hello", Hello(version=VERSION, setup_digest=b"", count=1)), ("queries/0", [])], "list of 1"),
        ([("hello", Hello(version=VERSION, setup_digest=b"", count=1)), ("queries/0", [b"x"])], "PirQuery"),
    ],
)
def test_a_malformed_client_is_a_protocol_violation(
    server: KeywordPirServer, messages: list[tuple[str, object]], problem: str
) -> None:
    hub = MemoryHub(["bank", "registry"])
    with pytest.raises(ProtocolViolation, match=problem):
        hub.run({"registry": lambda ch: run_pir_server(ch, "bank", server), "bank": fake_client(messages)}, timeout=30)
