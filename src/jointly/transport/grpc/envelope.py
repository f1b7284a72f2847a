"""Wire envelopes of the peer service: small msgpack maps with a closed schema.

Every gRPC request and response between nodes is one of the frozen dataclasses
below, packed as a msgpack map ``{"k": kind, field: value, ...}``.  Decoding
is strict: bounded sizes, exact field sets, exact types, no extension types,
nothing executed.  Bytes that fail any check decode to :class:`Malformed`
(never an exception), so the server can reject them with ``INVALID_ARGUMENT``
and a client can report a broken peer as a :class:`~jointly.errors.TransportError`.

What this protects: a node's memory and control flow against malformed or
hostile frames from anyone who got through mutual TLS.  Payload bytes (the
message bodies and control payloads) are opaque here; they are decoded by
the safe codec of :mod:`jointly.channel.codec` at their destination.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import msgpack

SERVICE: Final = "jointly.peer.v1.Peer"
SEND_METHOD: Final = f"/{SERVICE}/Send"
SEND_ONE_METHOD: Final = f"/{SERVICE}/SendOne"
HEARTBEAT_METHOD: Final = f"/{SERVICE}/Heartbeat"
CONTROL_METHOD: Final = f"/{SERVICE}/Control"

DEFAULT_CHUNK_BYTES: Final = 1 << 20
MAX_CHUNK_BYTES: Final = 16 << 20
MAX_CONTROL_BYTES: Final = 16 << 20
#: gRPC's per-message limit on both sides: the biggest chunk or control payload plus envelope overhead.
MAX_FRAME_BYTES: Final = (16 << 20) + (64 << 10)

MAX_JOB_ID: Final = 128
MAX_TAG: Final = 1024
MAX_NAME: Final = 64
MAX_TEXT: Final = 4096

RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
UNKNOWN: Final = "unknown"
STATUSES: Final = frozenset({RUNNING, SUCCEEDED, FAILED, UNKNOWN})


@dataclass(frozen=True)
class SendHeader:
    """First frame of a Send stream: which message follows and how big it is."""

    job: str
    src: str
    dst: str
    tag: str
    size: int


@dataclass(frozen=True)
class Chunk:
    """A following frame of a Send stream: the next slice of the body."""

    data: bytes


@dataclass(frozen=True)
class WholeMessage:
    """A message that fits one frame, sent in one unary ``SendOne`` call: the header's fields and the body.

    The server checks it exactly as a ``Send`` stream of one :class:`SendHeader` and one :class:`Chunk`;
    a unary call costs gRPC about half the work of a stream (no request-iterator thread).
    """

    job: str
    src: str
    dst: str
    tag: str
    data: bytes


@dataclass(frozen=True)
class Ack:
    """Reply to Send: delivered now, or already delivered earlier (a retry)."""

    duplicate: bool


@dataclass(frozen=True)
class JobState:
    """A node's state of one job.  For ``failed``: who failed, in which stage, and why."""

    status: str
    stage: str = ""
    party: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Heartbeat:
    """Caller's own state of ``job``; the reply is the callee's :class:`JobState`."""

    job: str
    state: JobState


@dataclass(frozen=True)
class ControlRequest:
    """A control call: method name and a payload encoded with the safe codec."""

    method: str
    payload: bytes


@dataclass(frozen=True)
class ControlReply:
    """Either ``ok`` with a codec-encoded ``value``, or the error's type name, message and fields."""

    ok: bool
    value: bytes = b""
    error_type: str = ""
    error_message: str = ""
    error_fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Malformed:
    """Bytes that are not a valid envelope of the expected kinds."""

    reason: str


Envelope = SendHeader | Chunk | WholeMessage | Ack | JobState | Heartbeat | ControlRequest | ControlReply
_E = TypeVar("_E")

# kind -> (class, {field: (allowed types, bound)}): bound is a max length for str/bytes/dict, a max value for int
_Spec = dict[str, tuple[tuple[type, ...], int]]
_SCALAR = (str, int, float, type(None))
#: where a job message goes, the same in a Send stream's header and in a SendOne request
_ADDRESS: _Spec = {
    "job": ((str,), MAX_JOB_ID),
    "src": ((str,), MAX_NAME),
    "dst": ((str,), MAX_NAME),
    "tag": ((str,), MAX_TAG),
}
_SCHEMAS: dict[str, tuple[type, _Spec]] = {
    "hdr": (SendHeader, {**_ADDRESS, "size": ((int,), 1 << 62)}),
    "chk": (Chunk, {"data": ((bytes,), MAX_CHUNK_BYTES)}),
    "msg": (WholeMessage, {**_ADDRESS, "data": ((bytes,), MAX_CHUNK_BYTES)}),
    "ack": (Ack, {"duplicate": ((bool,), 1)}),
    "st": (
        JobState,
        {
            "status": ((str,), 16),
            "stage": ((str,), MAX_TAG),
            "party": ((str,), MAX_NAME),
            "reason": ((str,), MAX_TEXT),
        },
    ),
    "hb": (Heartbeat, {"job": ((str,), MAX_JOB_ID), "state": ((JobState,), 0)}),
    "ctl": (ControlRequest, {"method": ((str,), MAX_NAME), "payload": ((bytes,), MAX_CONTROL_BYTES)}),
    "rep": (
        ControlReply,
        {
            "ok": ((bool,), 1),
            "value": ((bytes,), MAX_CONTROL_BYTES),
            "error_type": ((str,), MAX_NAME),
            "error_message": ((str,), MAX_TEXT),
            "error_fields": ((dict,), 8),
        },
    ),
}
_KINDS: dict[type, str] = {cls: kind for kind, (cls, _spec) in _SCHEMAS.items()}


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Shorten ``text`` to fit a bounded envelope field."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_map(env: object) -> dict[str, Any]:
    kind = _KINDS[type(env)]
    out: dict[str, Any] = {"k": kind}
    for f in dataclasses.fields(env):  # type: ignore[arg-type]
        value = getattr(env, f.name)
        out[f.name] = _to_map(value) if type(value) in _KINDS else value
    return out


def pack(env: Envelope) -> bytes:
    """Serialise an envelope (used as gRPC request/response serializer)."""
    data: bytes = msgpack.packb(_to_map(env), use_bin_type=True)
    return data


class _Bad(Exception):
    pass


def _check_value(name: str, value: object, types: tuple[type, ...], bound: int) -> object:
    if JobState in types:
        return _from_map(value, expect=("st",))
    if bool not in types and isinstance(value, bool):
        raise _Bad(f"field {name!r} has the wrong type")
    if not isinstance(value, types):
        raise _Bad(f"field {name!r} has the wrong type")
    if isinstance(value, str | bytes | dict) and len(value) > bound:
        raise _Bad(f"field {name!r} is too long")
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= bound:
        raise _Bad(f"field {name!r} is out of range")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or len(k) > MAX_NAME or isinstance(v, bool) or not isinstance(v, _SCALAR):
                raise _Bad(f"field {name!r} holds a bad entry")
            if isinstance(v, str) and len(v) > MAX_TEXT:
                raise _Bad(f"field {name!r} holds a bad entry")
    return value


def _from_map(raw: object, *, expect: tuple[str, ...]) -> Any:
    if not isinstance(raw, dict):
        raise _Bad("envelope is not a map")
    kind = raw.get("k")
    if kind not in expect:
        raise _Bad(f"unexpected envelope kind {kind!r}")
    cls, spec = _SCHEMAS[kind]
    keys = set(raw) - {"k"}
    if keys != set(spec):
        raise _Bad(f"envelope {kind!r} has fields {sorted(map(str, keys))}, expected {sorted(spec)}")
    return cls(**{name: _check_value(name, raw[name], *spec[name]) for name in spec})


def unpack(data: bytes, *kinds: type[_E]) -> _E | Malformed:
    """Decode ``data`` as one of ``kinds``; anything else (including garbage) is :class:`Malformed`."""
    expect = tuple(_KINDS[k] for k in kinds)
    limit = max(len(data), 1)
    try:
        raw = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=min(limit, MAX_TEXT),
            max_bin_len=limit,
            max_array_len=0,
            max_map_len=16,
            max_ext_len=0,
        )
        result: _E = _from_map(raw, expect=expect)
    except _Bad as exc:
        return Malformed(str(exc))
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        return Malformed(f"undecodable envelope ({type(exc).__name__})")
    return result


def deserializer(*kinds: type) -> Any:
    """A gRPC (de)serializer function decoding to ``kinds`` or :class:`Malformed` (never raising)."""

    def decode(data: bytes) -> object:
        return unpack(data, *kinds)

    return decode
