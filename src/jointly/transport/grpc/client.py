"""The calling side of the peer service: channels to other nodes and control calls.

A :class:`PeerLink` is one mutual-TLS channel from a party to one peer node,
authenticated as that party and accepting only a server whose certificate
names the peer.  :class:`ControlClient` wraps one link for the CLI.

Errors a node's control method raised come back as the same
:mod:`jointly.errors` class (rebuilt from its name, message and the fields of
the structured ones); anything else is a :class:`~jointly.errors.TransportError`.
Nothing from the reply is executed or unpickled: payloads use the safe codec.
"""

from __future__ import annotations

import time

import grpc

from jointly import errors
from jointly.channel.codec import decode, encode
from jointly.config.federation import Federation
from jointly.errors import (
    AuthenticationError,
    CodecError,
    ConfigError,
    DataError,
    JointlyError,
    MessageTooLarge,
    PeerTimeout,
    ProtocolAborted,
    TransportError,
)
from jointly.transport.grpc.envelope import (
    CONTROL_METHOD,
    HEARTBEAT_METHOD,
    MAX_CONTROL_BYTES,
    MAX_NAME,
    MAX_TEXT,
    SEND_METHOD,
    SEND_ONE_METHOD,
    Ack,
    ControlReply,
    ControlRequest,
    JobState,
    Malformed,
    clip,
    deserializer,
    pack,
)
from jointly.transport.grpc.tls import is_handshake_failure, secure_channel

#: fields that rebuild the structured errors on the caller's side
_ERROR_FIELDS: dict[type[JointlyError], tuple[str, ...]] = {
    ProtocolAborted: ("party", "stage", "reason"),
    PeerTimeout: ("peer", "tag", "timeout"),
    DataError: ("path", "problem", "row"),
}


class PeerLink:
    """A mutual-TLS channel from ``as_party`` to ``peer``'s node (whose certificate must name ``peer``).

    gRPC does not reconnect a channel that failed while its calls do not wait for readiness; callers
    either pass ``wait_for_ready=True`` after a failure (the data path) or :meth:`reconnect` (control calls).
    """

    def __init__(self, federation: Federation, as_party: str, peer: str, *, address: str | None = None) -> None:
        federation.party(peer)
        self.as_party = as_party
        self.peer = peer
        self._federation = federation
        self._address = address
        self._connect()

    def _connect(self) -> None:
        self.channel = secure_channel(self._federation, self.as_party, self.peer, address=self._address)
        self.send = self.channel.stream_unary(
            SEND_METHOD, request_serializer=pack, response_deserializer=deserializer(Ack)
        )
        self.send_one = self.channel.unary_unary(
            SEND_ONE_METHOD, request_serializer=pack, response_deserializer=deserializer(Ack)
        )
        self.heartbeat = self.channel.unary_unary(
            HEARTBEAT_METHOD, request_serializer=pack, response_deserializer=deserializer(JobState)
        )
        self.control = self.channel.unary_unary(
            CONTROL_METHOD, request_serializer=pack, response_deserializer=deserializer(ControlReply)
        )

    def reconnect(self) -> None:
        """Replace the channel by a fresh one (cancels calls in flight on the old one)."""
        old = self.channel
        self._connect()
        old.close()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> PeerLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rpc_failure(exc: grpc.RpcError, peer: str, what: str) -> JointlyError:
    """The jointly error for a failed RPC to ``peer``'s node."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED) or (
        code == grpc.StatusCode.UNAVAILABLE and is_handshake_failure(details)
    ):
        return AuthenticationError(f"{what}: node {peer!r} refused or could not be authenticated: {details}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return MessageTooLarge(f"{what}: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return TransportError(f"{what}: node {peer!r} is unreachable: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TransportError(f"{what}: node {peer!r} did not answer in time")
    name = code.name if code is not None else "UNKNOWN"
    return TransportError(f"{what}: node {peer!r} answered {name}: {details}")


def error_reply(exc: JointlyError) -> ControlReply:
    """Package a control method's error for the caller: type name, message, structured fields."""
    fields: dict[str, object] = {}
    for cls, names in _ERROR_FIELDS.items():
        if isinstance(exc, cls):
            for name in names:
                value = getattr(exc, name, None)
                fields[name] = clip(value) if isinstance(value, str) else value
    return ControlReply(
        ok=False,
        error_type=clip(type(exc).__name__, MAX_NAME),
        error_message=clip(str(exc), MAX_TEXT),
        error_fields=fields,
    )


def remote_error(reply: ControlReply, peer: str) -> JointlyError:
    """Rebuild the error a peer's control method raised, if it is a :mod:`jointly.errors` class."""
    cls = vars(errors).get(reply.error_type)
    if isinstance(cls, type) and issubclass(cls, JointlyError) and cls.__module__ == errors.__name__:
        try:
            return cls(**reply.error_fields) if reply.error_fields else cls(reply.error_message)
        except (TypeError, ValueError):
            pass
    return TransportError(f"node {peer!r} failed: {reply.error_type}: {reply.error_message}")


def _control_request(method: str, payload: object) -> ControlRequest:
    if not isinstance(method, str) or not method or len(method) > MAX_NAME:
        raise ConfigError(f"invalid control method name {method!r}")
    return ControlRequest(method, encode(payload, max_bytes=MAX_CONTROL_BYTES))


def _control_result(reply: object, peer: str, what: str) -> object:
    if isinstance(reply, Malformed):
        raise TransportError(f"{what}: node {peer!r} sent a malformed reply: {reply.reason}")
    if not isinstance(reply, ControlReply):
        raise TransportError(f"{what}: node {peer!r} sent an unexpected reply")
    if not reply.ok:
        raise remote_error(reply, peer)
    try:
        return decode(reply.value, max_bytes=MAX_CONTROL_BYTES)
    except CodecError as exc:
        raise TransportError(f"{what}: node {peer!r} sent an undecodable reply: {exc}") from None


def _retry_fresh(exc: grpc.RpcError) -> bool:
    """Whether a failed call may succeed on a fresh connection (the node was down, now maybe up)."""
    return bool(exc.code() == grpc.StatusCode.UNAVAILABLE and not is_handshake_failure(exc.details()))


class ControlClient:
    """Talks to ``target``'s node as ``as_party`` (authenticated by ``as_party``'s certificate).

    Used by the CLI for its own node and for partners' nodes; needs ``as_party``'s TLS key.
    """

    def __init__(self, federation: Federation, as_party: str, target: str, *, address: str | None = None) -> None:
        federation.party(as_party)
        self.as_party = as_party
        self.target = target
        self._link = PeerLink(federation, as_party, target, address=address)

    def call(self, method: str, payload: object, *, timeout: float = 10.0) -> object:
        """Call a control method; the node's JointlyError is re-raised here, anything else is TransportError.

        Not retried except once on a fresh connection when the node was unreachable, so a node that
        came up since the last call is found at once (control methods may not be idempotent, but an
        unreachable node never received the first attempt).
        """
        request = _control_request(method, payload)
        what = f"control call {method!r}"
        deadline = time.monotonic() + timeout
        try:
            reply = self._link.control(request, timeout=timeout)
        except grpc.RpcError as exc:
            remaining = deadline - time.monotonic()
            if not _retry_fresh(exc) or remaining <= 0:
                raise rpc_failure(exc, self.target, what) from None
            self._link.reconnect()
            try:
                reply = self._link.control(request, timeout=remaining)
            except grpc.RpcError as again:
                raise rpc_failure(again, self.target, what) from None
        return _control_result(reply, self.target, what)

    def close(self) -> None:
        self._link.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
