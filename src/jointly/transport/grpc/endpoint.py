"""One party's endpoint of one joint job over gRPC: mailbox, sender, heartbeats.

Created by :meth:`PeerServer.open_job <jointly.transport.grpc.server.PeerServer.open_job>`.
Messages are addressed by ``(job, src, dst, tag)`` and delivered once: the
server drops a retried copy, acknowledging it.  While the job is open the
endpoint heartbeats every peer; a peer that stays unreachable for
``peer_dead_after`` seconds, reports the job failed, or forgets the job fails
it here too, and every blocked :meth:`recv_bytes` raises
:class:`~jointly.errors.ProtocolAborted` naming that peer.

What this protects: the job's parties against waiting forever on a dead or
aborted peer, and against messages from anyone who is not a party of the job
(checked by the server against the certificate-proven sender).  It does not
hide message sizes or timing from the peers or the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import grpc

from jointly.channel.base import Endpoint
from jointly.errors import ConfigError, MessageTooLarge, PeerDropped, PeerTimeout, ProtocolAborted, TransportError
from jointly.transport.grpc.client import PeerLink, rpc_failure
from jointly.transport.grpc.envelope import (
    FAILED,
    MAX_TAG,
    RUNNING,
    SUCCEEDED,
    UNKNOWN,
    Chunk,
    Heartbeat,
    JobState,
    Malformed,
    SendHeader,
    WholeMessage,
    clip,
)
from jointly.transport.grpc.tls import is_handshake_failure

log = logging.getLogger("jointly.transport")

MessageHook = Callable[[str, str, str, bytes], None]
_RETRY_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)  # NOT_FOUND: job not open there yet
_MAX_BACKOFF = 1.0
_PUSH_TIMEOUT = 2.0
_POLL = 0.1

DELIVERED, DUPLICATE, CLOSED = "delivered", "duplicate", "closed"


class GrpcEndpoint(Endpoint):
    """This party's side of one job: send to and receive from the job's other parties."""

    def __init__(
        self,
        job_id: str,
        party: str,
        parties: Sequence[str],
        *,
        links: Callable[[str], PeerLink],
        on_close: Callable[[GrpcEndpoint], None],
        max_message_bytes: int,
        heartbeat_interval: float,
        peer_dead_after: float,
        chunk_bytes: int,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.party = party
        self.parties = tuple(parties)
        self.peers = tuple(p for p in self.parties if p != party)
        self.max_message_bytes = max_message_bytes
        self.heartbeat_interval = heartbeat_interval
        self.peer_dead_after = peer_dead_after
        self.chunk_bytes = chunk_bytes
        #: called as ``(direction, peer, tag, data)`` for every message sent (after the ack) or delivered
        #: (before the receiver can take it)
        self.on_message: MessageHook | None = None
        self._links = links
        self._on_close = on_close
        self._cond = threading.Condition()
        self._box: dict[tuple[str, str], bytes] = {}
        self._seen: set[tuple[str, str]] = set()
        self._failure: tuple[str, str, str] | None = None
        self._final: JobState | None = None
        self._ended = threading.Event()  # set on failure or close: wakes senders' backoff
        self._stop = threading.Event()  # stops the heartbeat thread
        self._stats = {"bytes_sent": 0, "bytes_received": 0, "messages_sent": 0, "messages_received": 0}
        now = time.monotonic()
        self._alive: dict[str, float] = dict.fromkeys(self.peers, now)
        self._joined: set[str] = set()  # peers that reported the job running at least once
        self._done: set[str] = set()  # peers that finished the job successfully
        self._peer_stage: dict[str, str] = {}
        self._unreachable: set[str] = set()  # peers whose last heartbeat failed
        self._last_error: dict[str, str] = {}  # the last informative connection error per peer
        self._tolerated: set[str] = set()  # peers whose failure the job survives (FL clients)
        self._dropped: dict[str, tuple[str, str]] = {}  # tolerated peers that failed: (stage, reason)
        self._thread = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{party}-{job_id}", daemon=True)

    # -- state ------------------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """A snapshot: bytes_sent, bytes_received, messages_sent, messages_received."""
        with self._cond:
            return dict(self._stats)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._final is not None

    @property
    def failure(self) -> ProtocolAborted | None:
        with self._cond:
            return ProtocolAborted(*self._failure) if self._failure else None

    def state(self) -> JobState:
        """This party's state of the job, as reported to peers."""
        with self._cond:
            if self._final is not None:
                return self._final
            if self._failure is not None:
                party, stage, reason = self._failure
                return JobState(FAILED, clip(stage, MAX_TAG), party, clip(reason))
        return JobState(RUNNING, clip(self.stage, MAX_TAG))

    def check(self) -> None:
        """Raise :class:`ProtocolAborted` once the job failed anywhere (here included)."""
        with self._cond:
            if self._failure is not None:
                raise ProtocolAborted(*self._failure)

    def tolerate(self, peers: Iterable[str]) -> None:
        peers = tuple(peers)
        for name in peers:
            self._check_peer(name)
        with self._cond:
            self._tolerated.update(peers)

    def dropped(self) -> dict[str, str]:
        with self._cond:
            return {p: reason for p, (_, reason) in self._dropped.items()}

    def traffic(self) -> dict[str, int]:
        return self.stats

    def _fail(self, party: str, stage: str, reason: str) -> bool:
        with self._cond:
            if self._failure is not None or self._final is not None:
                return False
            dropped = party in self._tolerated and party != self.party
            if dropped:
                if party in self._dropped:
                    return False
                self._dropped[party] = (stage, reason)
            else:
                self._failure = (party, stage, reason)
                self._ended.set()
            self._cond.notify_all()
        if dropped:
            log.warning("job %s at %s: %r dropped out in stage %r: %s", self.job_id, self.party, party, stage, reason)
            return False
        log.warning("job %s failed at %s: party %r in stage %r: %s", self.job_id, self.party, party, stage, reason)
        return True

    def _raise_if_over(self, peer: str | None = None) -> None:
        with self._cond:
            if self._failure is not None:
                raise ProtocolAborted(*self._failure)
            if self._final is not None:
                raise TransportError(f"job {self.job_id} is closed at {self.party!r}")
            if peer is not None and peer in self._dropped:
                raise PeerDropped(peer, *self._dropped[peer])

    def _check_peer(self, name: str) -> None:
        if name not in self.peers:
            raise ConfigError(
                f"{name!r} is not a peer of {self.party!r} in job {self.job_id} ({', '.join(self.parties)})"
            )

    # -- sending ----------------------------------------------------------------------------
    def _frames(self, to: str, tag: str, data: bytes) -> Iterator[SendHeader | Chunk]:
        yield SendHeader(self.job_id, self.party, to, tag, len(data))
        view = memoryview(data)
        for offset in range(0, len(data), self.chunk_bytes):
            if self._ended.is_set():
                return  # the receiver sees a truncated message and drops it
            yield Chunk(bytes(view[offset : offset + self.chunk_bytes]))

    def send_bytes(self, to: str, tag: str, data: bytes) -> None:
        """Deliver ``data`` to ``to`` under ``tag``; retries until delivered, the job fails, or the timeout."""
        self._check_peer(to)
        if not tag or len(tag) > MAX_TAG:
            raise ConfigError(f"message tags must have 1 to {MAX_TAG} characters")
        self.claim_tag(to, tag)
        self._raise_if_over()
        if len(data) > self.max_message_bytes:
            raise MessageTooLarge(f"message of {len(data)} bytes is over the limit of {self.max_message_bytes}")
        timeout = self.default_timeout
        deadline = time.monotonic() + timeout
        backoff = 0.05
        last = "no attempt"
        wait_for_ready = False  # the first attempt reports connection problems precisely; later ones reconnect
        while True:
            self._raise_if_over(to)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(f"could not deliver {tag!r} to {to!r} within {timeout:g}s: {last}")
            try:
                link = self._links(to)
                if len(data) <= self.chunk_bytes:  # one unary call: half gRPC's work of a stream
                    whole = WholeMessage(self.job_id, self.party, to, tag, data)
                    future = link.send_one.future(whole, timeout=remaining, wait_for_ready=wait_for_ready)
                else:
                    future = link.send.future(
                        self._frames(to, tag, data), timeout=remaining, wait_for_ready=wait_for_ready
                    )
                reply = self._await(future, to)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details()
                if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    raise rpc_failure(exc, to, f"sending {tag!r}") from None
                self._raise_if_over(to)  # e.g. we cut the message short because the job failed meanwhile
                if code in _RETRY_CODES and not is_handshake_failure(details):
                    if code == grpc.StatusCode.UNAVAILABLE:
                        wait_for_ready = True
                    last = f"{code.name}: {details}"
                    self._ended.wait(min(backoff, max(remaining, 0.0)))
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TransportError(f"could not deliver {tag!r} to {to!r} within {timeout:g}s: {last}") from None
                if code == grpc.StatusCode.FAILED_PRECONDITION:  # the peer has closed the job: how did it end?
                    self._heartbeat_round([to], min(_PUSH_TIMEOUT, max(remaining, 0.1)))
                    self._raise_if_over(to)
                    raise TransportError(f"{to!r} has already closed job {self.job_id}: {details}") from None
                raise rpc_failure(exc, to, f"sending {tag!r}") from None
            if isinstance(reply, Malformed):
                raise TransportError(f"{to!r} acknowledged {tag!r} with a malformed reply: {reply.reason}")
            break
        with self._cond:
            self._stats["bytes_sent"] += len(data)
            self._stats["messages_sent"] += 1
        self._notify("sent", to, tag, data)

    def _await(self, future: grpc.Future, to: str) -> object:
        """The future's result; cancels it and raises as soon as the job fails or closes (or ``to`` drops out)."""
        while True:
            try:
                return future.result(timeout=_POLL)
            except grpc.FutureTimeoutError:
                with self._cond:
                    gone = to in self._dropped
                if self._ended.is_set() or gone:
                    future.cancel()
                    self._raise_if_over(to)
            except grpc.FutureCancelledError:
                self._raise_if_over()
                raise TransportError(f"sending to a peer of job {self.job_id} was cancelled") from None

    # -- receiving --------------------------------------------------------------------------
    def recv_bytes(self, frm: str, tag: str, timeout: float) -> bytes:
        """Wait for ``frm``'s message under ``tag``; PeerTimeout after ``timeout``, ProtocolAborted on failure."""
        return self.recv_first_bytes(frm, (tag,), timeout)[1]

    def recv_first_bytes(self, frm: str, tags: Sequence[str], timeout: float) -> tuple[str, bytes]:
        """Wait for whichever of ``frm``'s messages under ``tags`` arrives first: ``(tag, data)``."""
        self._check_peer(frm)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._failure is not None:
                    raise ProtocolAborted(*self._failure)
                if self._final is not None:
                    raise TransportError(f"job {self.job_id} is closed at {self.party!r}")
                for tag in tags:
                    data = self._box.pop((frm, tag), None)
                    if data is not None:
                        return tag, data
                if frm in self._dropped:
                    raise PeerDropped(frm, *self._dropped[frm])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeout(frm, " or ".join(tags), timeout)
                self._cond.wait(left)

    def was_delivered(self, src: str, tag: str) -> bool:
        with self._cond:
            return (src, tag) in self._seen

    def deliver(self, src: str, tag: str, data: bytes) -> str:
        """Called by the server for a complete message from ``src``: DELIVERED, DUPLICATE or CLOSED.

        The message hook sees the message before a receiver can take it: when the protocol returns,
        the record of what this party received is complete (the node writes it to the ledger next).
        """
        with self._cond:
            if self._final is not None:
                return CLOSED
            if (src, tag) in self._seen:
                return DUPLICATE
            self._seen.add((src, tag))
        self._notify("received", src, tag, data)  # outside the lock: hashing a large message blocks nobody
        with self._cond:
            if self.closed:  # meanwhile (the condition's lock is re-entrant)
                return CLOSED
            self._box[(src, tag)] = data
            self._stats["bytes_received"] += len(data)
            self._stats["messages_received"] += 1
            self._alive[src] = time.monotonic()
            self._cond.notify_all()
        return DELIVERED

    def _notify(self, direction: str, peer: str, tag: str, data: bytes) -> None:
        hook = self.on_message
        if hook is None:
            return
        try:
            hook(direction, peer, tag, data)
        except Exception:  # a broken hook must not break the transport; it is logged
            log.exception("on_message hook failed for %s message %r (job %s)", direction, tag, self.job_id)

    # -- liveness ---------------------------------------------------------------------------
    def observe(self, peer: str, state: JobState | None) -> None:
        """Take note of ``peer``'s state of the job (from its heartbeat, our heartbeat's reply, or a message)."""
        if state is None or state.status == RUNNING:
            with self._cond:
                self._alive[peer] = time.monotonic()
                if state is not None:
                    self._joined.add(peer)
                    self._peer_stage[peer] = state.stage
            return
        if state.status == SUCCEEDED:
            with self._cond:
                self._done.add(peer)
                self._alive[peer] = time.monotonic()
            return
        if state.status == FAILED:
            party = state.party if state.party in self.parties else peer
            if party != peer:
                log.warning("job %s: %r reports that %r failed", self.job_id, peer, party)
            self._fail(party, state.stage or self.stage, state.reason or "failed")
            return
        if state.status == UNKNOWN:
            with self._cond:
                lost = peer in self._joined and peer not in self._done
                stage = self._peer_stage.get(peer) or self.stage
            if lost:
                self._fail(peer, stage, f"{peer!r} no longer knows job {self.job_id} (its node restarted?)")

    def _check_liveness(self) -> None:
        now = time.monotonic()
        with self._cond:
            silent = [
                (p, now - self._alive[p], p in self._joined, self._peer_stage.get(p), self._last_error.get(p))
                for p in self.peers
                if p not in self._done and p not in self._dropped and now - self._alive[p] > self.peer_dead_after
            ]
        for peer, quiet, joined, stage, error in silent:
            what = "unreachable" if joined else "not in the job (unreachable or never opened it)"
            detail = f" (last error: {error})" if error else ""
            self._fail(peer, stage or self.stage, f"{peer!r} {what} for {quiet:.1f}s{detail}")
            return

    def _heartbeat_timeout(self) -> float:
        return min(max(2 * self.heartbeat_interval, 0.25), 5.0, self.peer_dead_after)

    def _heartbeat_round(self, peers: Sequence[str], timeout: float) -> None:
        request = Heartbeat(self.job_id, self.state())
        with self._cond:
            # a reply of "unknown job" only means a peer lost the job if it had joined before we asked:
            # a peer that opens the job while our request is in flight answers "unknown" yet is fine
            joined_before = set(self._joined)
        futures = []
        for peer in peers:
            # after a failure, wait for readiness: that is what makes gRPC reconnect to a node that came back
            ready = peer in self._unreachable
            try:
                futures.append(
                    (peer, self._links(peer).heartbeat.future(request, timeout=timeout, wait_for_ready=ready))
                )
            except (ValueError, RuntimeError, TransportError) as exc:  # channel closed by stop()
                log.debug("heartbeat to %s not sent: %s", peer, exc)
        for peer, future in futures:
            try:
                reply = future.result()
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    self._fail(peer, self.stage, f"{peer!r} refuses this party in job {self.job_id}: {exc.details()}")
                    continue
                with self._cond:
                    self._unreachable.add(peer)
                    if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        self._last_error[peer] = clip(str(exc.details()), 300)
                continue
            except grpc.FutureCancelledError:
                continue
            with self._cond:
                self._unreachable.discard(peer)
            if isinstance(reply, Malformed):
                log.warning("job %s: malformed heartbeat reply from %s: %s", self.job_id, peer, reply.reason)
                continue
            if reply.status == UNKNOWN and peer not in joined_before:
                continue
            self.observe(peer, reply)

    def _heartbeat_loop(self) -> None:
        timeout = self._heartbeat_timeout()
        while True:
            with self._cond:
                peers = [p for p in self.peers if p not in self._done]
            self._heartbeat_round(peers, timeout)
            self._check_liveness()
            if self._stop.wait(self.heartbeat_interval):
                return

    def start(self) -> None:
        self._thread.start()

    def _push_state(self) -> None:
        """Tell every unfinished peer our state now (best effort, bounded wait)."""
        with self._cond:
            peers = [p for p in self.peers if p not in self._done]
        self._heartbeat_round(peers, min(_PUSH_TIMEOUT, self.peer_dead_after))

    def _stop_heartbeats(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._heartbeat_timeout() + 1.0)

    # -- ending -----------------------------------------------------------------------------
    def abort(self, reason: str) -> None:
        """Mark the job failed by this party at its current stage and tell every peer now (best effort)."""
        self._fail(self.party, self.stage, reason)
        if not self.closed:
            self._push_state()

    def close(self, *, succeeded: bool) -> None:
        """End the job here: stop heartbeats, drop the mailbox, tell the peers how it ended.

        The server keeps answering heartbeats for this job with the final state for a while.
        """
        if not succeeded:
            self._fail(self.party, self.stage, "job ended here before it finished")
        with self._cond:
            if self._final is not None:
                return
            if succeeded:
                self._final = JobState(SUCCEEDED, clip(self.stage, MAX_TAG))
            else:
                party, stage, reason = self._failure or (self.party, self.stage, "failed")
                self._final = JobState(FAILED, clip(stage, MAX_TAG), party, clip(reason))
            self._box.clear()
            self._ended.set()
            self._cond.notify_all()
        self._stop_heartbeats()
        self._on_close(self)
        self._push_state()

    def shutdown(self, reason: str) -> None:
        """The node is stopping: fail the job locally and stop heartbeats, without telling peers (like a crash)."""
        self._fail(self.party, self.stage, reason)
        self._stop_heartbeats()

    def __repr__(self) -> str:
        return f"GrpcEndpoint(job={self.job_id!r}, party={self.party!r}, parties={self.parties!r})"


__all__ = ["CLOSED", "DELIVERED", "DUPLICATE", "GrpcEndpoint"]
