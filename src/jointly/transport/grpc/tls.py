"""Mutual TLS between party nodes: credentials, channel options, and who is calling.

Both directions are authenticated by the federation CA:

* the server requires a client certificate signed by the CA and takes the
  caller's party name from that verified certificate's CN (:func:`caller_party`),
  never from anything written in a message;
* a client trusts only the federation CA and pins the *expected peer's party
  name* as the TLS target name, so it talks to the real peer or to nobody
  (another party's node, or anything with a foreign certificate, fails the
  handshake).

What this protects: message contents and identities against the network and
against anyone without a CA-signed key; party A against party B pretending to
be C.  It does not protect against a party whose private key has leaked.
"""

from __future__ import annotations

from typing import Any

import grpc

from jointly.config.federation import Federation
from jointly.transport.grpc.envelope import MAX_FRAME_BYTES

#: gRPC reconnects a broken channel with exponential backoff; cap it so a restarted peer is found again quickly.
#: Never set ``grpc.min_reconnect_backoff_ms``: gRPC also uses it as the connect timeout (TLS handshake included),
#: and a small value makes every reconnect time out.
_RECONNECT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def server_credentials(federation: Federation, party: str) -> grpc.ServerCredentials:
    """TLS server credentials of ``party``, requiring a CA-signed client certificate."""
    entry = federation.party(party)
    return grpc.ssl_server_credentials(
        [(entry.read_key(), entry.read_cert())],
        root_certificates=federation.read_ca_cert(),
        require_client_auth=True,
    )


def channel_credentials(federation: Federation, party: str) -> grpc.ChannelCredentials:
    """TLS client credentials: ``party``'s certificate and key, trusting only the federation CA."""
    entry = federation.party(party)
    return grpc.ssl_channel_credentials(
        root_certificates=federation.read_ca_cert(),
        private_key=entry.read_key(),
        certificate_chain=entry.read_cert(),
    )


def server_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
        ("grpc.max_send_message_length", MAX_FRAME_BYTES),
        ("grpc.so_reuseport", 0),  # a second node on the same port must fail, not share it
    ]


def channel_options(peer: str) -> list[tuple[str, Any]]:
    """Options of a channel to ``peer``'s node: its certificate must name ``peer``."""
    return [
        ("grpc.ssl_target_name_override", peer),
        ("grpc.max_receive_message_length", MAX_FRAME_BYTES),
        ("grpc.max_send_message_length", MAX_FRAME_BYTES),
        ("grpc.enable_retries", 0),  # the transport retries itself, idempotently
        ("grpc.use_local_subchannel_pool", 1),  # never share a connection made with another party's credentials
        *_RECONNECT_OPTIONS,
    ]


def secure_channel(federation: Federation, as_party: str, peer: str, *, address: str | None = None) -> grpc.Channel:
    """A channel from ``as_party`` to ``peer``'s node (at ``address``, default: the federation's)."""
    target = address or federation.party(peer).address
    return grpc.secure_channel(target, channel_credentials(federation, as_party), options=channel_options(peer))


def caller_party(context: grpc.ServicerContext) -> str | None:
    """The party name proven by the caller's verified TLS client certificate, or None."""
    auth = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    names = auth.get("x509_common_name") or []
    if len(names) != 1:
        return None
    try:
        return bytes(names[0]).decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_handshake_failure(details: str | None) -> bool:
    """Whether an UNAVAILABLE error is a TLS identity failure (retrying will not help)."""
    text = (details or "").lower()
    return any(
        marker in text
        for marker in ("handshake", "certificate_verify", "certificate verify", "peer name", "tsi_", "bad certificate")
    )
