"""Messages between real PeerServers on loopback mutual TLS: delivery, tags, retries, limits."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from jointly.channel import Channel
from jointly.config.federation import Federation
from jointly.errors import ConfigError, MessageTooLarge, PeerTimeout, TransportError
from jointly.transport.grpc import GrpcEndpoint
from jointly.transport.grpc.client import PeerLink
from jointly.transport.grpc.envelope import SEND_METHOD, Ack, Chunk, Malformed, SendHeader
from tests.unit.transport.conftest import ServerFactory

JOB = ("bank", "telco")


def test_values_round_trip_through_channels(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    ch_b = Channel(bank.open_job("j1", JOB))
    ch_t = Channel(telco.open_job("j1", JOB))
    arr = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    big = np.array([2**200 + 1, -(2**70), 3], dtype=object)
    ch_b.send("telco", "values", {"arr": arr, "big": big, "n": 2**100, "s": "héllo", "none": None})
    got = ch_t.recv("bank", "values", timeout=5)
    assert isinstance(got, dict)
    np.testing.assert_array_equal(got["arr"], arr)
    assert got["arr"].dtype == np.float64
    assert [int(v) for v in got["big"]] == [2**200 + 1, -(2**70), 3]
    assert (got["n"], got["s"], got["none"]) == (2**100, "héllo", None)
    ch_t.sub("reply").send("bank", "ok", [1, 2.5, b"\x00raw"])
    assert ch_b.sub("reply").recv("telco", "ok", timeout=5) == [1, 2.5, b"\x00raw"]


def test_tags_not_arrival_order_decide_what_is_read(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    ch_b = Channel(bank.open_job("j1", JOB))
    ch_t = Channel(telco.open_job("j1", JOB))
    for it in range(5):
        ch_b.sub("train").sub(it).send("telco", "w", it * 10)
    ch_b.send("telco", "empty", b"")
    assert [ch_t.sub("train").sub(it).recv("bank", "w", timeout=5) for it in (4, 0, 3, 1, 2)] == [40, 0, 30, 10, 20]
    assert ch_t.recv("bank", "empty", timeout=5) == b""
    with pytest.raises(ConfigError, match="already used"):
        ch_b.sub("train").sub(0).send("telco", "w", 99)


def test_recv_timeout_names_peer_and_tag(make_server: ServerFactory) -> None:
    telco = make_server("telco")
    make_server("bank").open_job("j1", JOB)
    endpoint = telco.open_job("j1", JOB)
    start = time.monotonic()
    with pytest.raises(PeerTimeout) as info:
        Channel(endpoint).sub("psi").recv("bank", "points", timeout=0.3)
    assert 0.25 < time.monotonic() - start < 3
    assert (info.value.peer, info.value.tag) == ("bank", "psi/points")
    assert "'bank'" in str(info.value) and "psi/points" in str(info.value)


def test_message_sent_before_receiver_opens_the_job_is_not_lost(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    sender = bank.open_job("j1", JOB)
    opened: list[GrpcEndpoint] = []
    opener = threading.Timer(0.5, lambda: opened.append(telco.open_job("j1", JOB)))
    opener.start()
    start = time.monotonic()
    sender.send_bytes("telco", "early", b"first")  # blocks, retrying, until telco opens the job
    assert time.monotonic() - start >= 0.45
    opener.join()
    assert opened[0].recv_bytes("bank", "early", 5) == b"first"


def test_sender_retries_until_the_receiving_node_is_up(make_server: ServerFactory) -> None:
    bank = make_server("bank")
    telco = make_server("telco", start=False)
    sender = bank.open_job("j1", JOB)
    receiver = telco.open_job("j1", JOB)
    threading.Timer(0.5, telco.start).start()
    sender.send_bytes("telco", "t", b"late")
    assert receiver.recv_bytes("bank", "t", 5) == b"late"


def test_send_gives_up_after_its_timeout(make_server: ServerFactory) -> None:
    bank = make_server("bank", heartbeat_interval=5.0, peer_dead_after=60.0)
    sender = bank.open_job("j1", JOB)  # telco's node is never started
    sender.default_timeout = 0.5
    with pytest.raises(TransportError, match="could not deliver 't' to 'telco'"):
        sender.send_bytes("telco", "t", b"x")


def _frames(*frames: object) -> object:
    return iter(frames)


def test_a_retried_message_is_acknowledged_but_delivered_once(
    make_server: ServerFactory, federation: Federation
) -> None:
    telco = make_server("telco")
    receiver = telco.open_job("j1", JOB)
    link = PeerLink(federation, "bank", "telco")
    try:
        message = (SendHeader("j1", "bank", "telco", "m", 6), Chunk(b"abc"), Chunk(b"def"))
        first = link.send(_frames(*message), timeout=5)
        again = link.send(_frames(*message), timeout=5)  # e.g. the first ack was lost
        assert first == Ack(duplicate=False)
        assert again == Ack(duplicate=True)
        assert receiver.recv_bytes("bank", "m", 1) == b"abcdef"
        with pytest.raises(PeerTimeout):
            receiver.recv_bytes("bank", "m", 0.3)
        assert receiver.stats["messages_received"] == 1
    finally:
        link.close()


def test_receiver_enforces_its_size_limit(make_server: ServerFactory, federation: Federation) -> None:
    bank = make_server("bank")
    telco = make_server("telco", max_message_bytes=1000)
    sender = bank.open_job("j1", JOB)
    receiver = telco.open_job("j1", JOB)
    with pytest.raises(MessageTooLarge):
        sender.send_bytes("telco", "big", b"x" * 1001)
    sender.send_bytes("telco", "fits", b"x" * 1000)
    assert len(receiver.recv_bytes("bank", "fits", 1)) == 1000

    # a sender lying about the size is cut off as soon as it sends more than it declared
    link = PeerLink(federation, "bank", "telco")
    try:
        with pytest.raises(grpc.RpcError) as info:
            link.send(
                _frames(SendHeader("j1", "bank", "telco", "liar", 10), Chunk(b"x" * 8), Chunk(b"x" * 8)), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as info:
            link.send(_frames(SendHeader("j1", "bank", "telco", "short", 10), Chunk(b"x" * 8)), timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        link.close()
    assert receiver.stats["messages_received"] == 1


def test_malformed_frames_are_rejected_cleanly(make_server: ServerFactory, federation: Federation) -> None:
    telco = make_server("telco")
    receiver = telco.open_job("j1", JOB)
    link = PeerLink(federation, "bank", "telco")
    raw_send = link.channel.stream_unary(SEND_METHOD, request_serializer=bytes, response_deserializer=bytes)
    try:
        for garbage in (b"\xc1\xc1", b"\x93\x01\x02\x03", b"", b"\x81\xa1k\xa3hdr"):
            with pytest.raises(grpc.RpcError) as info:
                raw_send(iter([garbage]), timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:  # chunk before header
            link.send(_frames(Chunk(b"abc")), timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        ok = link.send(_frames(SendHeader("j1", "bank", "telco", "fine", 2), Chunk(b"ok")), timeout=5)
        assert not isinstance(ok, Malformed)  # the server is still serving
    finally:
        link.close()
    assert receiver.stats["messages_received"] == 1


def test_stats_and_message_hook(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    sender = bank.open_job("j1", JOB)
    receiver = telco.open_job("j1", JOB)
    seen: list[tuple[str, str, str, bytes]] = []
    sender.on_message = lambda *event: seen.append(event)
    receiver.on_message = lambda *event: seen.append(event)
    sender.send_bytes("telco", "a", b"12345")
    assert receiver.recv_bytes("bank", "a", 5) == b"12345"
    assert ("sent", "telco", "a", b"12345") in seen
    assert ("received", "bank", "a", b"12345") in seen
    assert sender.stats == {"bytes_sent": 5, "bytes_received": 0, "messages_sent": 1, "messages_received": 0}
    assert receiver.stats == {"bytes_sent": 0, "bytes_received": 5, "messages_sent": 0, "messages_received": 1}


def test_open_job_checks_its_arguments(make_server: ServerFactory) -> None:
    bank = make_server("bank", start=False)
    with pytest.raises(ConfigError):
        bank.open_job("j1", ["telco", "carol"])  # without bank
    with pytest.raises(ConfigError):
        bank.open_job("j1", ["bank", "mallory"])  # not in the federation
    with pytest.raises(ConfigError):
        bank.open_job("bad id/../x", JOB)
    bank.open_job("j1", JOB)
    with pytest.raises(ConfigError, match="already opened"):
        bank.open_job("j1", JOB)


def test_a_200_mb_message_round_trips(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    sender = bank.open_job("j1", JOB)
    receiver = telco.open_job("j1", JOB)
    # ~1.2 s and ~0.7 GB peak RSS for the whole process (sender's copy, receiver's chunks and joined copy)
    # a pattern whose period (a prime) is not a multiple of the chunk size: misplaced chunks would show
    payload = np.random.default_rng(1).integers(0, 256, 1_000_003, dtype=np.uint8).tobytes() * 200
    sender.send_bytes("telco", "huge", payload)
    got = receiver.recv_bytes("bank", "huge", 30)
    assert len(got) == len(payload) and got == payload
    assert receiver.stats["bytes_received"] == len(payload)


def test_the_message_hook_records_a_delivery_before_the_receiver_can_take_it(make_server: ServerFactory) -> None:
    """A party's record of what it received is complete when its protocol returns (the ledger is written then)."""
    bank, telco = make_server("bank"), make_server("telco")
    sender = bank.open_job("j1", JOB)
    receiver = telco.open_job("j1", JOB)
    recorded: list[str] = []

    def slow_hook(direction: str, peer: str, tag: str, data: bytes) -> None:
        if direction == "received":
            time.sleep(0.3)  # e.g. hashing a large message on a busy machine
            recorded.append(tag)

    receiver.on_message = slow_hook
    threading.Thread(target=sender.send_bytes, args=("telco", "last", b"x" * 100), daemon=True).start()
    assert receiver.recv_bytes("bank", "last", 10) == b"x" * 100
    assert recorded == ["last"]


def test_messages_on_either_side_of_the_chunk_size_arrive_intact(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    bank.chunk_bytes = 1000
    sender = bank.open_job("j1", JOB)
    receiver = telco.open_job("j1", JOB)
    sizes = [0, 1, 999, 1000, 1001, 4567]  # up to one chunk: one unary SendOne call; longer: a Send stream
    for size in sizes:
        sender.send_bytes("telco", f"m{size}", bytes([size % 251]) * size)
    for size in sizes:
        assert receiver.recv_bytes("bank", f"m{size}", 5) == bytes([size % 251]) * size
    assert receiver.stats["bytes_received"] == sum(sizes) and receiver.stats["messages_received"] == len(sizes)
