"""Control calls between nodes: caller identity, payloads, and how errors travel back."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from jointly.config.federation import Federation
from jointly.errors import (
    BudgetExhausted,
    ConfigError,
    DataError,
    JointlyError,
    PeerTimeout,
    ProtocolAborted,
    TransportError,
)
from jointly.transport.grpc import ControlClient
from tests.unit.transport.conftest import ServerFactory


class NodeOnlyError(JointlyError):
    """A JointlyError subclass that is not in jointly.errors."""


def control(caller: str, method: str, payload: object) -> object:
    if method == "echo":
        return {"caller": caller, "payload": payload}
    if method == "spend":
        raise BudgetExhausted("epsilon 1.5 would exceed the remaining 1.0")
    if method == "fail":
        raise ProtocolAborted("telco", "psi/round1", "bad points")
    if method == "timeout":
        raise PeerTimeout("carol", "psi/x", 2.5)
    if method == "data":
        raise DataError("/data/t.csv", "missing id", row=7)
    if method == "private":
        raise NodeOnlyError("node detail")
    if method == "crash":
        raise RuntimeError("secret internal path /srv/x")
    if method == "unencodable":
        return object()
    raise ConfigError(f"unknown control method {method!r}")


def test_control_round_trip_and_caller_identity(make_server: ServerFactory, federation: Federation) -> None:
    make_server("telco", control=control)
    bank = make_server("bank", control=control)
    arr = np.arange(4, dtype=np.int64)
    reply = bank.call("telco", "echo", {"spec": {"name": "x"}, "arr": arr}, timeout=5)
    assert isinstance(reply, dict) and reply["caller"] == "bank"
    np.testing.assert_array_equal(reply["payload"]["arr"], arr)
    assert reply["payload"]["spec"] == {"name": "x"}
    with ControlClient(federation, "telco", "telco") as own:  # an operator talking to its own node
        assert own.call("echo", None) == {"caller": "telco", "payload": None}
    with ControlClient(federation, "carol", "bank") as partner:
        assert partner.call("echo", [1, "two"]) == {"caller": "carol", "payload": [1, "two"]}


def test_control_errors_come_back_as_the_same_jointly_error(
    make_server: ServerFactory, federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    make_server("telco", control=control)
    with ControlClient(federation, "bank", "telco") as client:
        with pytest.raises(BudgetExhausted, match=r"remaining 1\.0"):
            client.call("spend", {})
        with pytest.raises(ProtocolAborted) as aborted:
            client.call("fail", {})
        assert (aborted.value.party, aborted.value.stage, aborted.value.reason) == ("telco", "psi/round1", "bad points")
        with pytest.raises(PeerTimeout) as timed_out:
            client.call("timeout", {})
        assert (timed_out.value.peer, timed_out.value.tag, timed_out.value.timeout) == ("carol", "psi/x", 2.5)
        with pytest.raises(DataError) as data:
            client.call("data", {})
        assert (data.value.path, data.value.row, data.value.problem) == ("/data/t.csv", 7, "missing id")
        with pytest.raises(ConfigError, match="unknown control method 'nope'"):
            client.call("nope", {})
        with pytest.raises(TransportError, match="NodeOnlyError: node detail"):
            client.call("private", {})
        with caplog.at_level(logging.ERROR, logger="jointly.transport"), pytest.raises(TransportError) as crash:
            client.call("crash", {})
        assert "secret" not in str(crash.value) and type(crash.value) is TransportError
        assert any("crash" in r.getMessage() for r in caplog.records)  # the details stay in the node's log
        with pytest.raises(TransportError, match="cannot be encoded"):
            client.call("unencodable", {})
        assert client.call("echo", 1)["payload"] == 1  # type: ignore[index]


def test_node_without_control_methods_and_unreachable_nodes(make_server: ServerFactory, federation: Federation) -> None:
    bank = make_server("bank")  # no control handler
    make_server("telco")
    with pytest.raises(ConfigError, match="unknown control method"):
        bank.call("telco", "health", {}, timeout=5)
    with pytest.raises(TransportError, match="unreachable"):
        bank.call("carol", "health", {}, timeout=2)  # carol's node is not running
    with pytest.raises(ConfigError):
        bank.call("mallory", "health", {})  # not a member


def test_control_client_needs_its_party_key(federation: Federation) -> None:
    entry = federation.party("bank")
    assert entry.key is not None
    entry.key.unlink()  # as on a partner's machine
    with pytest.raises(ConfigError, match="TLS key"):
        ControlClient(federation, "bank", "telco")


def test_control_client_finds_a_node_that_came_up_after_a_failed_call(
    make_server: ServerFactory, federation: Federation
) -> None:
    telco = make_server("telco", control=control, start=False)
    with ControlClient(federation, "bank", "telco") as client:
        with pytest.raises(TransportError, match="unreachable"):
            client.call("echo", 1, timeout=2)
        telco.start()
        # gRPC alone would keep failing fast with the cached "connection refused" for a while
        assert client.call("echo", 2, timeout=2) == {"caller": "bank", "payload": 2}
