"""Who may talk to whom: mutual TLS, certificate-proven senders, job membership."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from jointly.config.federation import Federation, init_federation
from jointly.errors import AuthenticationError, PeerTimeout, ProtocolAborted
from jointly.transport.grpc import ControlClient
from jointly.transport.grpc.client import PeerLink
from jointly.transport.grpc.envelope import (
    SEND_METHOD,
    SEND_ONE_METHOD,
    Ack,
    Chunk,
    Heartbeat,
    JobState,
    SendHeader,
    WholeMessage,
    deserializer,
    pack,
)
from tests.unit.transport.conftest import ServerFactory

JOB = ("bank", "telco")


@pytest.fixture
def foreign(tmp_path: Path) -> Federation:
    """Another federation with the same party names but its own CA."""
    return Federation.load(init_federation(["bank", "telco"], tmp_path / "foreign", name="foreign"))


def _message(tag: str, *, src: str = "bank", job: str = "j1") -> Iterator[object]:
    return iter([SendHeader(job, src, "telco", tag, 3), Chunk(b"abc")])


def test_peer_with_a_foreign_ca_fails_the_handshake(
    make_server: ServerFactory, federation: Federation, foreign: Federation
) -> None:
    calls: list[str] = []
    telco = make_server("telco", control=lambda caller, method, payload: calls.append(caller))
    receiver = telco.open_job("j1", JOB)
    address = federation.party("telco").address

    # the foreign "bank" does not trust telco's certificate (and telco would not trust bank's)
    with ControlClient(foreign, "bank", "telco", address=address) as client, pytest.raises(AuthenticationError):
        client.call("health", {}, timeout=3)

    # a client that trusts our CA but presents a certificate from a foreign CA is refused by the server
    creds = grpc.ssl_channel_credentials(
        root_certificates=federation.read_ca_cert(),
        private_key=foreign.party("bank").read_key(),
        certificate_chain=foreign.party("bank").read_cert(),
    )
    channel = grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", "telco")])
    send = channel.stream_unary(SEND_METHOD, request_serializer=pack, response_deserializer=deserializer(Ack))
    try:
        with pytest.raises(grpc.RpcError) as info:
            send(_message("t"), timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()

    with pytest.raises(PeerTimeout):
        receiver.recv_bytes("bank", "t", 0.2)
    assert receiver.stats["messages_received"] == 0
    assert calls == []

    # the same request from the real bank gets through: the refusals above were about trust
    with PeerLink(federation, "bank", "telco") as link:
        assert link.send(_message("t"), timeout=5) == Ack(duplicate=False)
    assert receiver.recv_bytes("bank", "t", 1) == b"abc"


def test_client_only_talks_to_the_peer_it_expects(make_server: ServerFactory, federation: Federation) -> None:
    make_server("carol", control=lambda caller, method, payload: "carol answered")
    # a misconfigured (or hijacked) address for telco leads to carol's node: its certificate does not say telco
    misdirected = ControlClient(federation, "bank", "telco", address=federation.party("carol").address)
    with misdirected, pytest.raises(AuthenticationError, match="telco"):
        misdirected.call("health", {}, timeout=3)
    with ControlClient(federation, "bank", "carol") as direct:
        assert direct.call("health", {}, timeout=3) == "carol answered"


def test_a_party_outside_the_job_is_refused_and_logged(
    make_server: ServerFactory, federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    telco = make_server("telco")
    receiver = telco.open_job("j1", JOB)
    with (
        caplog.at_level(logging.WARNING, logger="jointly.transport"),
        PeerLink(federation, "carol", "telco") as link,
    ):
        with pytest.raises(grpc.RpcError) as info:
            link.send(_message("t", src="carol"), timeout=3)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            link.heartbeat(Heartbeat("j1", JobState("running")), timeout=3)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    refusals = [
        r.getMessage() for r in caplog.records if r.name == "jointly.transport" and r.levelno == logging.WARNING
    ]
    assert any("message 't'" in m and "'carol'" in m and "not a party" in m for m in refusals)
    assert any("heartbeat" in m and "'carol'" in m and "not a party" in m for m in refusals)

    # through the public API: carol believes she is in the job; telco refuses her messages and heartbeats
    carol = make_server("carol")
    intruder = carol.open_job("j1", ["carol", "telco"])
    with pytest.raises((AuthenticationError, ProtocolAborted)):
        intruder.send_bytes("telco", "t", b"let me in")
    with pytest.raises(ProtocolAborted) as aborted:
        intruder.recv_bytes("telco", "never", 3)
    assert aborted.value.party == "telco" and "refuses" in aborted.value.reason
    assert receiver.stats["messages_received"] == 0
    receiver.check()  # an outsider's attempts do not fail the job


def test_spoofed_sender_in_the_envelope_is_refused_and_logged(
    make_server: ServerFactory, federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    telco = make_server("telco")
    receiver = telco.open_job("j1", ("bank", "telco", "carol"))
    # carol is in the job, but writes "bank" as the sender
    with (
        caplog.at_level(logging.WARNING, logger="jointly.transport"),
        PeerLink(federation, "carol", "telco") as link,
        pytest.raises(grpc.RpcError) as info,
    ):
        link.send(_message("t", src="bank"), timeout=3)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    warning = next(r for r in caplog.records if r.name == "jointly.transport" and r.levelno == logging.WARNING)
    assert "claims sender 'bank'" in warning.getMessage() and "proves 'carol'" in warning.getMessage()
    with pytest.raises(PeerTimeout):
        receiver.recv_bytes("bank", "t", 0.2)
    assert receiver.stats["messages_received"] == 0


def test_single_frame_messages_get_the_same_checks_as_streamed_ones(
    make_server: ServerFactory, federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    """``SendOne`` (a message in one unary call) refuses spoofed senders, outsiders, misaddressed and bad requests."""
    telco = make_server("telco")
    receiver = telco.open_job("j1", ("bank", "telco"))

    def send_one(link: PeerLink, msg: object) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as info:
            link.send_one(msg, timeout=3)
        return info.value.code()

    with caplog.at_level(logging.WARNING, logger="jointly.transport"):
        with PeerLink(federation, "carol", "telco") as link:
            # carol writes "bank" as the sender; then as herself, but she is not in the job
            assert send_one(link, WholeMessage("j1", "bank", "telco", "t", b"abc")) == grpc.StatusCode.PERMISSION_DENIED
            assert (
                send_one(link, WholeMessage("j1", "carol", "telco", "t", b"abc")) == grpc.StatusCode.PERMISSION_DENIED
            )
        with PeerLink(federation, "bank", "telco") as link:
            assert send_one(link, WholeMessage("j1", "bank", "carol", "t", b"abc")) == grpc.StatusCode.INVALID_ARGUMENT
            assert send_one(link, WholeMessage("j9", "bank", "telco", "t", b"abc")) == grpc.StatusCode.NOT_FOUND
            raw = link.channel.unary_unary(SEND_ONE_METHOD, request_serializer=bytes, response_deserializer=bytes)
            with pytest.raises(grpc.RpcError) as info:
                raw(b"\x93garbage", timeout=3)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            header = pack(SendHeader("j1", "bank", "telco", "t", 3))  # a stream frame is not a whole message
            with pytest.raises(grpc.RpcError) as info:
                raw(header, timeout=3)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert receiver.stats["messages_received"] == 0
            # the real bank's message gets through once; a retry is acknowledged as a duplicate
            assert link.send_one(WholeMessage("j1", "bank", "telco", "t", b"abc"), timeout=5) == Ack(duplicate=False)
            assert link.send_one(WholeMessage("j1", "bank", "telco", "t", b"xyz"), timeout=5) == Ack(duplicate=True)
    assert receiver.recv_bytes("bank", "t", 1) == b"abc"
    warnings = [r.getMessage() for r in caplog.records if r.name == "jointly.transport"]
    assert any("claims sender 'bank'" in m and "proves 'carol'" in m for m in warnings)
    assert any("'carol'" in m and "not a party" in m for m in warnings)
