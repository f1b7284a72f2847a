"""The server (aggregator) side of secure aggregation: four stages over one :class:`ServerState`.

The server relays every client-to-client message, counts clients that miss a
stage deadline (``config.timeout``) as dropped, and in the last stage rebuilds
exactly the secrets needed to remove the masks from the sum.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointly.channel import Channel
from jointly.crypto import shamir
from jointly.errors import ConfigError, PeerDropped, PeerTimeout, ProtocolViolation
from jointly.protocols.secagg.common import (
    AdvertiseKeys,
    MaskedInput,
    MaskExpander,
    Roster,
    SealedShares,
    SecAggConfig,
    SecAggResult,
    UnmaskRequest,
    UnmaskShares,
    decode_sum,
    expect,
    mask_seed,
    require,
    session_id,
    vector_length,
)


@dataclass
class ServerState:
    """What the server holds between stages: public keys, who is still in, and the masked sum."""

    clients: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    config: SecAggConfig
    roster: Roster | None = None
    session: bytes = b""
    sharers: tuple[str, ...] = ()  # U2
    survivors: tuple[str, ...] = ()  # U3
    masked_sum: np.ndarray | None = field(default=None, repr=False)
    result: SecAggResult | None = None

    @property
    def length(self) -> int:
        return vector_length(self.shapes)

    def index(self, client: str) -> int:
        if self.roster is None:
            raise ConfigError("stage out of order: no roster yet")
        return self.roster.clients.index(client)


def _gather(ch: Channel, tag: str, frm: Sequence[str], timeout: float) -> dict[str, object]:
    """Messages from whichever of ``frm`` answer before one shared deadline; the others dropped out."""
    deadline = time.monotonic() + timeout
    got: dict[str, object] = {}
    for party in frm:
        try:
            got[party] = ch.recv(party, tag, timeout=max(0.0, deadline - time.monotonic()))
        except (PeerTimeout, PeerDropped):  # slow, or known dead (a tolerated peer over gRPC)
            continue
    return got


def _send_each(ch: Channel, tag: str, values: Mapping[str, object]) -> None:
    """Send each client its value, concurrently; a client known to have dropped out is skipped (later stages notice)."""
    ch.send_each(tag, values, tolerate=(PeerDropped,))


def collect_keys(channel: Channel, state: ServerState) -> None:
    """Stage 1: gather public keys (U1) and broadcast the roster to U1."""
    ch = channel.sub("advertise")
    got = _gather(ch, "keys", state.clients, state.config.timeout)
    roster = accept_keys(state, got, stage=ch.namespace, party=ch.party)
    _send_each(ch, "roster", dict.fromkeys(roster.clients, roster))


def accept_keys(state: ServerState, got: dict[str, object], *, party: str, stage: str = "advertise") -> Roster:
    """Stage 1 on keys however they arrived (``AdvertiseKeys`` by client): U1 and the roster, which the caller
    delivers to U1 unless :func:`collect_keys` does.  Only clients of this round count; job order is kept."""
    if state.roster is not None:
        raise ConfigError("stage out of order: the roster is already made")
    got = {c: got[c] for c in state.clients if c in got}
    fingerprint = state.config.fingerprint()
    clients: list[str] = []
    c_pks: list[bytes] = []
    s_pks: list[bytes] = []
    for name, value in got.items():
        msg = expect(value, AdvertiseKeys, name)
        if msg.config != fingerprint:
            raise ProtocolViolation(f"{name!r} runs secure aggregation with a different configuration")
        keys = (msg.c_pk, msg.s_pk)
        if not all(isinstance(k, bytes) and len(k) == 32 for k in keys) or set(keys) & set(c_pks + s_pks):
            raise ProtocolViolation(f"{name!r} sent malformed or repeated public keys")
        clients.append(name)
        c_pks.append(msg.c_pk)
        s_pks.append(msg.s_pk)
    require(len(clients), state.config.threshold, party=party, stage=stage, what="advertised keys")
    state.config.check_capacity(len(clients))
    state.roster = Roster(clients=clients, c_pks=c_pks, s_pks=s_pks, length=state.length)
    state.session = session_id(state.roster, state.config)
    return state.roster


def relay_shares(channel: Channel, state: ServerState) -> None:
    """Stage 2: gather sealed shares from U1; U2 = who sent them; forward each its ciphertexts from U2."""
    ch = channel.sub("share")
    if state.roster is None:
        raise ConfigError("stage out of order: collect_keys first")
    got = _gather(ch, "out", state.roster.clients, state.config.timeout)
    _send_each(ch, "in", route_shares(state, got, party=ch.party, stage=ch.namespace))


def route_shares(
    state: ServerState, got: dict[str, object], *, party: str, stage: str = "share"
) -> dict[str, SealedShares]:
    """Stage 2 on sealed shares however they arrived (``SealedShares`` by client of U1): U2 = their senders;
    returns the bundle each member of U2 must receive (the ciphertexts sealed for it), which the caller
    delivers unless :func:`relay_shares` does."""
    if state.roster is None or state.sharers:
        raise ConfigError("stage out of order: a roster first, and shares once")
    u1 = state.roster.clients
    sealed: dict[str, dict[str, bytes]] = {}
    for name in u1:
        if name not in got:
            continue
        cts = expect(got[name], SealedShares, name).ciphertexts
        if not isinstance(cts, dict) or set(cts) != set(u1) - {name}:
            raise ProtocolViolation(f"{name!r} did not seal one share for every other client")
        sealed[name] = cts
    state.sharers = tuple(c for c in u1 if c in sealed)
    require(len(state.sharers), state.config.threshold, party=party, stage=stage, what="shared keys")
    return {v: SealedShares(ciphertexts={u: sealed[u][v] for u in state.sharers if u != v}) for v in state.sharers}


def collect_masked(channel: Channel, state: ServerState) -> None:
    """Stage 3: add up the masked inputs of U2; U3 = who sent one."""
    ch = channel.sub("masked")
    got = _gather(ch, "input", state.sharers, state.config.timeout)
    accept_masked(state, got, stage=ch.namespace, party=ch.party)


def accept_masked(state: ServerState, got: dict[str, object], *, party: str, stage: str = "masked") -> None:
    """Stage 3 on masked inputs however they arrived (``MaskedInput`` by client); U3 = the sharers among them."""
    if not state.sharers or state.masked_sum is not None:
        raise ConfigError("stage out of order: relay_shares first, and masked inputs once")
    got = {c: got[c] for c in state.sharers if c in got}
    total = np.zeros(state.length, dtype=state.config.dtype)
    for name, value in got.items():
        vec = expect(value, MaskedInput, name).vector
        if not isinstance(vec, np.ndarray) or vec.dtype != state.config.dtype or vec.shape != (state.length,):
            raise ProtocolViolation(f"{name!r} sent a masked input of the wrong type or length")
        total += vec
    state.survivors = tuple(c for c in state.sharers if c in got)
    require(len(state.survivors), state.config.threshold, party=party, stage=stage, what="sent inputs")
    state.masked_sum = total


def _rebuild(shares: dict[str, bytes], responders: Sequence[str], state: ServerState, owner: str) -> bytes:
    points = []
    for r in responders:
        try:
            share = shamir.Share.from_bytes(shares[r])
        except (ConfigError, KeyError, TypeError) as exc:
            raise ProtocolViolation(f"{r!r} sent a malformed share of {owner!r}'s secret") from exc
        if share.x != state.index(r) + 1 or len(share.y) != 1:
            raise ProtocolViolation(f"{r!r} sent a share of {owner!r}'s secret at the wrong point")
        points.append(share)
    try:
        return shamir.to_bytes(shamir.reconstruct(points, state.config.threshold)[0])
    except ConfigError as exc:
        raise ProtocolViolation(f"the shares of {owner!r}'s secret are inconsistent") from exc


def unmask(channel: Channel, state: ServerState, *, prefer: Sequence[str] | None = None) -> SecAggResult:
    """Stage 4: ask U3 for shares, rebuild self-mask seeds of U3 and mask keys of U2 - U3, unmask the sum.

    ``prefer``: ask only ``threshold`` members of U3, the first in this order (fewer messages), and
    the rest of U3 only if too few of them answer.  Clients not asked must then be ready to receive
    the request until the protocol moves on (see :meth:`~jointly.channel.Channel.recv_first`).
    Default: ask all of U3 at once.
    """
    ch = channel.sub("unmask")
    roster, total = state.roster, state.masked_sum
    if roster is None or total is None:
        raise ConfigError("stage out of order: collect_masked first")
    survivors = list(state.survivors)
    dropped = [c for c in state.sharers if c not in state.survivors]
    request = UnmaskRequest(survivors=survivors, dropped=dropped)
    first = survivors
    if prefer is not None:
        ranked = [c for c in prefer if c in survivors] + [c for c in survivors if c not in prefer]
        first = [c for c in survivors if c in ranked[: state.config.threshold]]  # U3's order
    _send_each(ch, "request", dict.fromkeys(first, request))
    got = _gather(ch, "shares", first, state.config.timeout)
    rest = [c for c in survivors if c not in first]
    if len(got) < state.config.threshold and rest:  # a helper dropped out: ask the others
        _send_each(ch, "request", dict.fromkeys(rest, request))
        got |= _gather(ch, "shares", rest, state.config.timeout)
    replies = {}
    for name, value in got.items():
        msg = expect(value, UnmaskShares, name)
        if not (isinstance(msg.self_seed, dict) and isinstance(msg.mask_key, dict)):
            raise ProtocolViolation(f"{name!r} sent malformed unmasking shares")
        if set(msg.self_seed) != set(survivors) or set(msg.mask_key) != set(dropped):
            raise ProtocolViolation(f"{name!r} did not send exactly the shares the server asked for")
        replies[name] = msg
    responders = [c for c in survivors if c in replies][: state.config.threshold]
    require(len(replies), state.config.threshold, party=ch.party, stage=ch.namespace, what="sent unmasking shares")

    expander = MaskExpander(state.length, state.config.dtype)
    for v in survivors:
        expander.subtract(total, _rebuild({r: replies[r].self_seed[v] for r in responders}, responders, state, v))
    for u in dropped:
        raw = _rebuild({r: replies[r].mask_key[u] for r in responders}, responders, state, u)
        key = X25519PrivateKey.from_private_bytes(raw)
        iu = state.index(u)
        if key.public_key().public_bytes_raw() != roster.s_pks[iu]:
            raise ProtocolViolation(f"the rebuilt mask key of {u!r} does not match its public key")
        for v in survivors:
            iv = state.index(v)
            seed = mask_seed(key, roster.s_pks[iv], session=state.session, peer=v)
            if iv < iu:  # v added +PRG(s_uv) for a later client u, -PRG for an earlier one
                expander.subtract(total, seed)
            else:
                expander.add(total, seed)
    arrays, examples = decode_sum(total, state.shapes, state.config)
    state.result = SecAggResult(
        sum=arrays,
        total_examples=examples,
        survivors=tuple(survivors),
        dropped=tuple(c for c in state.clients if c not in survivors),
    )
    return state.result


def begin(server: str, clients: Sequence[str], shapes: Sequence[Sequence[int]], *, config: SecAggConfig) -> ServerState:
    """A new aggregation of ``clients``' arrays of ``shapes`` (checks only; nothing is sent)."""
    names = tuple(clients)
    if len(set(names)) != len(names) or server in names:
        raise ConfigError("clients must be distinct and must not include the server")
    dims = tuple(tuple(int(d) for d in s) for s in shapes)
    if any(d < 0 for s in dims for d in s):
        raise ConfigError("array shapes must be non-negative")
    config.check_capacity(len(names))
    return ServerState(clients=names, shapes=dims, config=config)


def open_round(
    channel: Channel, clients: Sequence[str], shapes: Sequence[Sequence[int]], *, config: SecAggConfig
) -> ServerState:
    """Stages 1-2 (keys, shares): they need no input, so run them while the clients compute theirs."""
    state = begin(channel.party, clients, shapes, config=config)
    collect_keys(channel, state)
    relay_shares(channel, state)
    return state


def close_round(channel: Channel, state: ServerState) -> SecAggResult:
    """Stages 3-4 (masked inputs, unmasking): the sum of the survivors' inputs."""
    collect_masked(channel, state)
    return unmask(channel, state)


def finish_round(
    channel: Channel, state: ServerState, inputs: dict[str, object], *, prefer: Sequence[str] | None = None
) -> SecAggResult:
    """Stages 3-4 when the masked inputs (``MaskedInput`` by client) arrived inside the caller's messages;
    ``prefer`` as in :func:`unmask`."""
    ch = channel.sub("masked")
    accept_masked(state, inputs, party=ch.party, stage=ch.namespace)
    return unmask(channel, state, prefer=prefer)


def run_secagg_server(
    channel: Channel, clients: Sequence[str], shapes: Sequence[Sequence[int]], *, config: SecAggConfig
) -> SecAggResult:
    """The server's side: the sum of the surviving clients' updates, of the given array ``shapes``."""
    return close_round(channel, open_round(channel, clients, shapes, config=config))
