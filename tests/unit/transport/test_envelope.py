"""The peer service's wire envelopes decode strictly: anything off is Malformed, never an exception."""

from __future__ import annotations

import msgpack
import pytest

from jointly.transport.grpc.envelope import (
    MAX_TAG,
    Ack,
    Chunk,
    ControlReply,
    ControlRequest,
    Heartbeat,
    JobState,
    Malformed,
    SendHeader,
    pack,
    unpack,
)


@pytest.mark.parametrize(
    "env",
    [
        SendHeader("job-1", "bank", "telco", "psi/points/0", 123),
        Chunk(b"\x00" * 1000),
        Ack(duplicate=True),
        JobState("failed", "psi", "bank", "boom"),
        Heartbeat("j", JobState("running", "train/3")),
        ControlRequest("submit", b"\x80"),
        ControlReply(ok=False, error_type="ProtocolAborted", error_message="m", error_fields={"party": "a", "n": 1.5}),
    ],
)
def test_round_trip(env: object) -> None:
    assert unpack(pack(env), type(env)) == env  # type: ignore[arg-type]


def test_only_the_expected_kinds_decode() -> None:
    data = pack(Ack(duplicate=False))
    assert isinstance(unpack(data, SendHeader, Chunk), Malformed)
    assert unpack(data, Ack) == Ack(duplicate=False)


def _raw(**fields: object) -> bytes:
    data: bytes = msgpack.packb(fields, use_bin_type=True)
    return data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # reserved msgpack byte
        b"\x93\x01\x02\x03",  # an array, not a map
        _raw(k="hdr", job="j", src="a", dst="b", tag="t"),  # missing size
        _raw(k="hdr", job="j", src="a", dst="b", tag="t", size=1, extra=1),  # unknown field
        _raw(k="hdr", job="j", src="a", dst="b", tag="t", size=-1),  # negative size
        _raw(k="hdr", job="j", src="a", dst="b", tag="t", size=True),  # bool is not an int here
        _raw(k="hdr", job="j", src="a", dst="b", tag="t" * (MAX_TAG + 1), size=1),  # tag too long
        _raw(k="hdr", job=b"j", src="a", dst="b", tag="t", size=1),  # bytes for a str
        _raw(k="chk", data="text, not bytes"),
        _raw(k="zzz"),
        _raw(k="hb", job="j", state={"k": "ack", "duplicate": True}),  # wrong nested kind
        _raw(k="rep", ok=False, value=b"", error_type="X", error_message="m", error_fields={"a": [1]}),
        pack(Chunk(b"x")) + b"\x00",  # trailing bytes
        msgpack.packb({"k": "chk", "data": msgpack.ExtType(1, b"x")}),  # extension types are refused
    ],
)
def test_garbage_is_malformed_not_an_exception(data: bytes) -> None:
    assert isinstance(unpack(data, SendHeader, Chunk, Heartbeat, ControlReply), Malformed)
