"""A party node's peer server: mutual-TLS gRPC service for job messages, heartbeats and control calls.

Four methods, no protobuf: requests and replies are the msgpack envelopes of
:mod:`jointly.transport.grpc.envelope`.

``Send`` (client stream)
    one message of a job, as a header then chunks; delivered once per
    ``(job, src, dst, tag)``.  ``NOT_FOUND`` means "job not open here yet":
    senders retry.
``SendOne`` (unary)
    a message that fits one chunk, header and body in one request; checked and
    delivered exactly as a ``Send`` of one chunk.
``Heartbeat``
    the caller's state of a job in, this node's state of it out.
``Control``
    a method of the node (``control(caller, method, payload)``) with safe-codec payloads.

The caller's party is always the CN of its verified client certificate.  A
message whose envelope names another sender, or from a party outside the job,
is refused with ``PERMISSION_DENIED`` and logged on ``jointly.transport``.

What this protects: each job's mailbox against every party that is not in
the job and against parties impersonating each other; the node against
oversized and malformed frames.  A party *in* a job can still send nonsense
payloads; protocols check what they decode.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from jointly.channel.codec import DEFAULT_MAX_MESSAGE_BYTES, decode, encode
from jointly.config.federation import Federation, join_address, split_address
from jointly.errors import CodecError, ConfigError, JointlyError, TransportError
from jointly.transport.grpc.client import ControlClient, PeerLink, error_reply
from jointly.transport.grpc.endpoint import CLOSED, DUPLICATE, GrpcEndpoint
from jointly.transport.grpc.envelope import (
    DEFAULT_CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    MAX_CONTROL_BYTES,
    SERVICE,
    UNKNOWN,
    Ack,
    Chunk,
    ControlReply,
    ControlRequest,
    Heartbeat,
    JobState,
    Malformed,
    SendHeader,
    WholeMessage,
    deserializer,
    pack,
)
from jointly.transport.grpc.tls import caller_party, server_credentials, server_options

log = logging.getLogger("jointly.transport")

ControlHandler = Callable[[str, str, object], object]
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_WORKERS = 32
_MAX_CLOSED_JOBS = 4096


@dataclass(frozen=True)
class _ClosedJob:
    parties: tuple[str, ...]
    state: JobState
    closed_at: float


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise TransportError(details)  # not reached: abort raises


class PeerServer:
    """``party``'s node endpoint for every job it runs, plus its control service and its outgoing links."""

    def __init__(
        self,
        federation: Federation,
        party: str,
        *,
        control: ControlHandler | None = None,
        heartbeat_interval: float = 1.0,
        peer_dead_after: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        bind_host: str | None = None,
    ) -> None:
        federation.party(party)
        if not heartbeat_interval > 0 or not peer_dead_after > heartbeat_interval:
            raise ConfigError("need 0 < heartbeat_interval < peer_dead_after")
        if max_message_bytes < 1:
            raise ConfigError("max_message_bytes must be positive")
        self.federation = federation
        self.party = party
        self.heartbeat_interval = heartbeat_interval
        self.peer_dead_after = peer_dead_after
        self.max_message_bytes = max_message_bytes
        self.bind_host = bind_host
        #: size of the slices a message is streamed in
        self.chunk_bytes = DEFAULT_CHUNK_BYTES
        #: how long a closed job's final state is still reported to its peers
        self.closed_retention = 600.0
        self._control = control
        self._lock = threading.Lock()
        self._jobs: dict[str, GrpcEndpoint] = {}
        self._closed: OrderedDict[str, _ClosedJob] = OrderedDict()
        self._links: dict[str, PeerLink] = {}
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._port: int | None = None
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on this party's federation address (host replaced by ``bind_host`` if given)."""
        with self._lock:
            if self._server is not None or self._stopped:
                raise ConfigError(f"the peer server of {self.party!r} was already started")
            host, port = split_address(self.federation.party(self.party).address)
            address = join_address(self.bind_host or host, port)
            credentials = server_credentials(self.federation, self.party)
            executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix=f"peer-{self.party}")
            server = grpc.server(executor, handlers=[self._service()], options=server_options())
            try:
                bound = server.add_secure_port(address, credentials)
            except RuntimeError as exc:
                executor.shutdown(wait=False)
                raise TransportError(f"{self.party!r} cannot listen on {address}: {exc}") from None
            if not bound:
                executor.shutdown(wait=False)
                raise TransportError(f"{self.party!r} cannot listen on {address}")
            server.start()
            self._server, self._executor, self._port = server, executor, int(bound)
        log.info("peer server of %s listening on %s", self.party, join_address(self.bind_host or host, bound))

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving and end every job here (peers are not told: they notice as with a crash)."""
        with self._lock:
            self._stopped = True
            endpoints = list(self._jobs.values())
            server, executor = self._server, self._executor
        for endpoint in endpoints:
            endpoint.shutdown(f"node {self.party!r} stopped")
        if server is not None:
            server.stop(grace).wait(grace + 2.0)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            links = list(self._links.values())
            self._links.clear()
        for link in links:
            link.close()

    @property
    def port(self) -> int:
        """The port this server listens on (the federation's port until started)."""
        if self._port is not None:
            return self._port
        return self.federation.party(self.party).port

    # -- jobs -------------------------------------------------------------------------------
    def open_job(self, job_id: str, parties: Sequence[str]) -> GrpcEndpoint:
        """Open this party's endpoint of job ``job_id`` between ``parties`` (this party included)."""
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise ConfigError(f"invalid job id {job_id!r}")
        names = tuple(parties)
        if self.party not in names:
            raise ConfigError(f"{self.party!r} is not a party of job {job_id} ({', '.join(names)})")
        if len(set(names)) != len(names):
            raise ConfigError(f"job {job_id} lists a party twice: {names}")
        for name in names:
            self.federation.party(name)
        endpoint = GrpcEndpoint(
            job_id,
            self.party,
            names,
            links=self._link,
            on_close=self._retire,
            max_message_bytes=self.max_message_bytes,
            heartbeat_interval=self.heartbeat_interval,
            peer_dead_after=self.peer_dead_after,
            chunk_bytes=min(max(self.chunk_bytes, 1), MAX_CHUNK_BYTES),
        )
        with self._lock:
            if self._stopped:
                raise TransportError(f"the peer server of {self.party!r} is stopped")
            if job_id in self._jobs or job_id in self._closed:
                raise ConfigError(f"job {job_id} was already opened on {self.party!r}")
            self._jobs[job_id] = endpoint
        endpoint.start()
        return endpoint

    def _retire(self, endpoint: GrpcEndpoint) -> None:
        now = time.monotonic()
        with self._lock:
            self._jobs.pop(endpoint.job_id, None)
            self._closed[endpoint.job_id] = _ClosedJob(endpoint.parties, endpoint.state(), now)
            while self._closed:
                oldest = next(iter(self._closed.values()))
                if len(self._closed) <= _MAX_CLOSED_JOBS and now - oldest.closed_at < self.closed_retention:
                    break
                self._closed.popitem(last=False)

    def _link(self, peer: str) -> PeerLink:
        with self._lock:
            if self._stopped:
                raise TransportError(f"the peer server of {self.party!r} is stopped")
            link = self._links.get(peer)
            if link is None:
                link = self._links[peer] = PeerLink(self.federation, self.party, peer)
            return link

    # -- control calls out -----------------------------------------------------------------
    def call(self, peer: str, method: str, payload: object, *, timeout: float = 10.0) -> object:
        """Call a control method on ``peer``'s node, authenticated as this party."""
        with self._lock:
            if self._stopped:
                raise TransportError(f"the peer server of {self.party!r} is stopped")
        with ControlClient(self.federation, self.party, peer) as client:  # own channel: never blocks the data path
            return client.call(method, payload, timeout=timeout)

    # -- the service ------------------------------------------------------------------------
    def _service(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Send": grpc.stream_unary_rpc_method_handler(
                    self._handle_send, request_deserializer=deserializer(SendHeader, Chunk), response_serializer=pack
                ),
                "SendOne": grpc.unary_unary_rpc_method_handler(
                    self._handle_send_one, request_deserializer=deserializer(WholeMessage), response_serializer=pack
                ),
                "Heartbeat": grpc.unary_unary_rpc_method_handler(
                    self._handle_heartbeat, request_deserializer=deserializer(Heartbeat), response_serializer=pack
                ),
                "Control": grpc.unary_unary_rpc_method_handler(
                    self._handle_control, request_deserializer=deserializer(ControlRequest), response_serializer=pack
                ),
            },
        )

    def _caller(self, context: grpc.ServicerContext) -> str:
        caller = caller_party(context)
        if caller is None or caller not in self.federation.parties:
            log.warning(
                "refused a call from %s: certificate names no party of the federation (%r)", context.peer(), caller
            )
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "no federation party certificate")
        return caller

    def _refuse_outsider(
        self, context: grpc.ServicerContext, job: str, caller: str, parties: tuple[str, ...], what: str
    ) -> None:
        if caller not in parties:
            log.warning(
                "refused %s for job %s from %r: not a party of the job (parties: %s)",
                what,
                job,
                caller,
                ", ".join(parties),
            )
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{caller!r} is not a party of job {job}")

    def _lookup(self, job: str) -> tuple[GrpcEndpoint | None, _ClosedJob | None]:
        with self._lock:
            return self._jobs.get(job), self._closed.get(job)

    def _handle_send_one(self, request: object, context: grpc.ServicerContext) -> Ack:
        if not isinstance(request, WholeMessage):
            self._caller(context)  # an outsider is refused as such, before its bytes are judged
            reason = request.reason if isinstance(request, Malformed) else "not a message"
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad message: {reason}")
        header = SendHeader(request.job, request.src, request.dst, request.tag, len(request.data))
        return self._handle_send(iter((header, Chunk(request.data))), context)

    def _handle_send(self, frames: Iterator[object], context: grpc.ServicerContext) -> Ack:
        caller = self._caller(context)
        try:
            header = next(frames, None)
        except grpc.RpcError:
            _abort(context, grpc.StatusCode.CANCELLED, "sender went away")
        if not isinstance(header, SendHeader):
            reason = header.reason if isinstance(header, Malformed) else "a message must start with its header"
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad message header: {reason}")
        if header.src != caller:
            log.warning(
                "refused message %r of job %s: envelope claims sender %r but the certificate proves %r",
                header.tag,
                header.job,
                header.src,
                caller,
            )
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"sender {header.src!r} is not the caller {caller!r}")
        if header.dst != self.party:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"message for {header.dst!r} reached {self.party!r}")
        endpoint, closed = self._lookup(header.job)
        if endpoint is None:
            if closed is None:
                _abort(context, grpc.StatusCode.NOT_FOUND, f"job {header.job} is not open at {self.party!r} (yet)")
            self._refuse_outsider(context, header.job, caller, closed.parties, f"message {header.tag!r}")
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"job {header.job} is closed at {self.party!r}")
        self._refuse_outsider(context, header.job, caller, endpoint.parties, f"message {header.tag!r}")
        if header.size > endpoint.max_message_bytes:
            _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"message of {header.size} bytes is over the limit of {endpoint.max_message_bytes}",
            )
        endpoint.observe(caller, None)
        if endpoint.was_delivered(caller, header.tag):
            return Ack(duplicate=True)
        parts: list[bytes] = []
        received = 0
        try:
            for frame in frames:
                if not isinstance(frame, Chunk):
                    reason = frame.reason if isinstance(frame, Malformed) else "a second header"
                    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad message chunk: {reason}")
                received += len(frame.data)
                if received > header.size:
                    _abort(
                        context,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"message {header.tag!r} is longer than its declared {header.size} bytes",
                    )
                parts.append(frame.data)
        except grpc.RpcError:
            _abort(context, grpc.StatusCode.CANCELLED, "sender went away")
        if received != header.size:
            _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message {header.tag!r} ended after {received} of {header.size} bytes",
            )
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        outcome = endpoint.deliver(caller, header.tag, data)
        if outcome == CLOSED:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"job {header.job} is closed at {self.party!r}")
        return Ack(duplicate=outcome == DUPLICATE)

    def _handle_heartbeat(self, request: object, context: grpc.ServicerContext) -> JobState:
        caller = self._caller(context)
        if not isinstance(request, Heartbeat):
            reason = request.reason if isinstance(request, Malformed) else "not a heartbeat"
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad heartbeat: {reason}")
        if self._stopped:  # a stopping node answers like a crashed one: peers are not told (see stop())
            _abort(context, grpc.StatusCode.UNAVAILABLE, f"node {self.party!r} is stopping")
        endpoint, closed = self._lookup(request.job)
        if endpoint is not None:
            self._refuse_outsider(context, request.job, caller, endpoint.parties, "heartbeat")
            endpoint.observe(caller, request.state)
            return endpoint.state()
        if closed is not None:
            self._refuse_outsider(context, request.job, caller, closed.parties, "heartbeat")
            return closed.state
        return JobState(UNKNOWN)

    def _handle_control(self, request: object, context: grpc.ServicerContext) -> ControlReply:
        caller = self._caller(context)
        if not isinstance(request, ControlRequest):
            reason = request.reason if isinstance(request, Malformed) else "not a control request"
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad control request: {reason}")
        try:
            payload = decode(request.payload, max_bytes=MAX_CONTROL_BYTES)
        except CodecError as exc:
            return error_reply(exc)
        if self._control is None:
            return error_reply(ConfigError(f"unknown control method {request.method!r} on {self.party!r}"))
        try:
            result: Any = self._control(caller, request.method, payload)
        except JointlyError as exc:
            return error_reply(exc)
        except Exception:  # internals stay here; the caller learns only that it failed
            log.exception("control method %r called by %r failed", request.method, caller)
            return ControlReply(
                ok=False, error_type="InternalError", error_message=f"{self.party!r} failed on {request.method!r}"
            )
        try:
            value = encode(result, max_bytes=MAX_CONTROL_BYTES)
        except CodecError as exc:
            log.error("reply of control method %r cannot be encoded: %s", request.method, exc)
            return error_reply(TransportError(f"the reply of {request.method!r} cannot be encoded: {exc}"))
        return ControlReply(ok=True, value=value)
