"""Heartbeats, dead peers, aborts and job endings between real PeerServers."""

from __future__ import annotations

import threading
import time

import pytest

from jointly.channel import Channel
from jointly.config.federation import Federation
from jointly.errors import ProtocolAborted, TransportError
from jointly.transport.grpc import GrpcEndpoint
from jointly.transport.grpc.client import PeerLink
from jointly.transport.grpc.envelope import FAILED, SUCCEEDED, UNKNOWN, Heartbeat, JobState
from tests.unit.transport.conftest import FAST, ServerFactory

JOB = ("bank", "telco")
THREE = ("bank", "telco", "carol")


def test_a_stopped_peer_fails_the_job_naming_that_peer(make_server: ServerFactory) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    waiting = Channel(bank.open_job("j1", JOB))
    ch_t = Channel(telco.open_job("j1", JOB))
    ch_t.sub("psi").send("bank", "hello", 1)
    assert waiting.sub("psi").recv("telco", "hello", timeout=5) == 1  # bank now in stage "psi"
    ch_t.sub("psi").sub("round2")  # telco's heartbeats report its stage
    time.sleep(0.3)
    telco.stop(grace=0)  # like a crash: telco tells nobody
    start = time.monotonic()
    with pytest.raises(ProtocolAborted) as info:
        waiting.recv("telco", "never", timeout=30)
    elapsed = time.monotonic() - start
    assert FAST["peer_dead_after"] - 0.5 < elapsed < FAST["peer_dead_after"] + 3
    assert info.value.party == "telco"
    assert info.value.stage == "psi/round2"  # the stage telco last reported
    assert "unreachable" in info.value.reason
    with pytest.raises(ProtocolAborted):
        waiting.check()


def test_every_blocked_receiver_wakes_when_the_job_fails(make_server: ServerFactory) -> None:
    bank, _telco = make_server("bank"), make_server("telco")
    endpoint = bank.open_job("j1", JOB)
    errors: list[BaseException] = []

    def wait(tag: str) -> None:
        try:
            endpoint.recv_bytes("telco", tag, 30)
        except ProtocolAborted as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait, args=(f"t{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    endpoint.abort("local failure")  # telco never opened the job; the abort is still pushed best effort
    for t in threads:
        t.join(5)
    assert len(errors) == 3
    assert all(isinstance(e, ProtocolAborted) and e.party == "bank" for e in errors)


def test_abort_reaches_every_peer_promptly(make_server: ServerFactory) -> None:
    slow = {"heartbeat_interval": 5.0, "peer_dead_after": 60.0}  # so only the push can explain a prompt failure
    servers = {p: make_server(p, **slow) for p in THREE}
    endpoints = {p: s.open_job("j1", THREE) for p, s in servers.items()}
    Channel(endpoints["bank"]).sub("train").sub(3)
    done: dict[str, tuple[ProtocolAborted, float]] = {}

    def wait(party: str) -> None:
        start = time.monotonic()
        try:
            endpoints[party].recv_bytes("bank", "grad", 30)
        except ProtocolAborted as exc:
            done[party] = (exc, time.monotonic() - start)

    threads = [threading.Thread(target=wait, args=(p,)) for p in ("telco", "carol")]
    for t in threads:
        t.start()
    time.sleep(0.2)
    endpoints["bank"].abort("bank's data failed validation")
    for t in threads:
        t.join(10)
    assert set(done) == {"telco", "carol"}
    for exc, elapsed in done.values():
        assert (exc.party, exc.stage, exc.reason) == ("bank", "train/3", "bank's data failed validation")
        assert elapsed < 2.0
    with pytest.raises(ProtocolAborted, match="bank"):
        endpoints["bank"].check()


def test_a_peer_that_finished_is_not_a_failure(make_server: ServerFactory, federation: Federation) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    eb = bank.open_job("j1", JOB)
    et = telco.open_job("j1", JOB)
    et.send_bytes("bank", "result", b"42")
    et.close(succeeded=True)
    telco.stop(grace=0)  # gone for good after finishing
    time.sleep(FAST["peer_dead_after"] + 1.0)
    eb.check()  # still healthy
    assert eb.recv_bytes("telco", "result", 1) == b"42"
    eb.close(succeeded=True)


def test_closed_job_reports_its_final_state(make_server: ServerFactory, federation: Federation) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    ok = telco.open_job("ok", JOB)
    ok.enter_stage("report")
    ok.close(succeeded=True)
    bad = telco.open_job("bad", JOB)
    bad.enter_stage("fit")
    bad.close(succeeded=False)
    with PeerLink(federation, "bank", "telco") as link:
        running = JobState("running")
        assert link.heartbeat(Heartbeat("ok", running), timeout=3) == JobState(SUCCEEDED, "report")
        failed = link.heartbeat(Heartbeat("bad", running), timeout=3)
        assert (failed.status, failed.party, failed.stage) == (FAILED, "telco", "fit")
        assert link.heartbeat(Heartbeat("nope", running), timeout=3).status == UNKNOWN
    # a peer that closes with failure ends the job for its partners
    eb = bank.open_job("bad", JOB)
    with pytest.raises(ProtocolAborted) as info:
        eb.recv_bytes("telco", "x", 5)
    assert (info.value.party, info.value.stage) == ("telco", "fit")


def test_a_peer_that_never_opens_the_job_fails_it(make_server: ServerFactory) -> None:
    bank, _telco = make_server("bank"), make_server("telco")
    endpoint = bank.open_job("j1", JOB)
    with pytest.raises(ProtocolAborted) as info:
        endpoint.recv_bytes("telco", "x", 30)
    assert info.value.party == "telco" and "never opened" in info.value.reason


def test_closed_endpoint_refuses_use_and_stop_ends_all_threads(make_server: ServerFactory) -> None:
    before = {t.ident for t in threading.enumerate()}
    bank, telco = make_server("bank"), make_server("telco")
    eb = bank.open_job("j1", JOB)
    telco.open_job("j1", JOB)
    eb.close(succeeded=True)
    eb.close(succeeded=False)  # idempotent: the first ending counts
    assert eb.state().status == SUCCEEDED
    with pytest.raises(TransportError, match="closed"):
        eb.send_bytes("telco", "late", b"x")
    with pytest.raises(TransportError, match="closed"):
        eb.recv_bytes("telco", "late", 1)
    bank.stop()
    telco.stop()
    time.sleep(0.3)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("heartbeat")]
    assert leftover == []


def test_heartbeats_find_a_peer_node_that_starts_late(make_server: ServerFactory) -> None:
    bank = make_server("bank", heartbeat_interval=0.1, peer_dead_after=4.0)
    # telco heartbeats once (at open), so only bank's own heartbeats can keep telco alive in bank's eyes
    telco = make_server("telco", start=False, heartbeat_interval=60.0, peer_dead_after=120.0)
    eb = bank.open_job("j1", JOB)
    telco.open_job("j1", JOB)
    time.sleep(1.5)  # bank's heartbeats to telco fail meanwhile: its channel is in reconnect backoff
    telco.start()
    time.sleep(3.0)  # past bank's peer_dead_after since the job opened
    eb.check()


def test_sending_to_a_peer_that_already_failed_names_that_peer(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank, telco = make_server("bank"), make_server("telco")
    et = telco.open_job("j1", JOB)
    et.enter_stage("load")
    et.close(succeeded=False)  # telco failed before bank even opened the job
    monkeypatch.setattr(GrpcEndpoint, "start", lambda self: None)  # no heartbeats: the send alone must find out
    eb = bank.open_job("j1", JOB)
    with pytest.raises(ProtocolAborted) as info:
        eb.send_bytes("telco", "points", b"x")
    assert (info.value.party, info.value.stage) == ("telco", "load")


class _Reply:
    """A heartbeat future whose answer arrives after the peer has joined meanwhile."""

    def __init__(self, before_answer: object, reply: JobState) -> None:
        self.before_answer, self.reply = before_answer, reply

    def result(self) -> JobState:
        self.before_answer()  # type: ignore[operator]
        return self.reply


class _Link:
    def __init__(self, future: _Reply) -> None:
        self.heartbeat = self
        self._future = future

    def future(self, request: Heartbeat, timeout: float, wait_for_ready: bool) -> _Reply:
        return self._future


def test_an_unknown_reply_from_a_peer_that_joined_meanwhile_is_not_a_loss() -> None:
    """The peer opens the job while our heartbeat is in flight: it answers "unknown job", then reports running."""
    endpoint: GrpcEndpoint
    future = _Reply(lambda: endpoint.observe("bank", JobState("running", "start")), JobState(UNKNOWN))
    endpoint = GrpcEndpoint(
        "j1",
        "telco",
        JOB,
        links=lambda peer: _Link(future),  # type: ignore[arg-type,return-value]
        on_close=lambda e: None,
        max_message_bytes=1 << 20,
        heartbeat_interval=1.0,
        peer_dead_after=5.0,
        chunk_bytes=1 << 16,
    )
    endpoint._heartbeat_round(["bank"], 1.0)
    assert not endpoint.closed
    endpoint.check()  # no failure recorded
    # once joined, an "unknown job" answer does mean the peer lost the job
    future.before_answer = lambda: None
    endpoint._heartbeat_round(["bank"], 1.0)
    with pytest.raises(ProtocolAborted, match="no longer knows"):
        endpoint.check()
