"""The client side of secure aggregation: four stages over one :class:`ClientState`.

A client talks only to the server; messages for other clients (encrypted
shares) are relayed by it.  See :mod:`jointly.protocols.secagg` for the steps
and what each party learns.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from jointly.channel import Channel
from jointly.crypto import shamir
from jointly.errors import ConfigError, ProtocolViolation
from jointly.protocols.secagg.common import (
    KEY_BYTES,
    AdvertiseKeys,
    MaskedInput,
    MaskExpander,
    Roster,
    SealedShares,
    SecAggConfig,
    UnmaskRequest,
    UnmaskShares,
    encode_update,
    expect,
    mask_seed,
    open_sealed,
    require,
    seal,
    session_id,
    share_key,
)

MASK_KEY, SELF_SEED = 0, 1  # positions of the two secrets in every Shamir share
_UNMASK = "unmask"  # stage 4's namespace
#: the tag of the server's stage-4 request, relative to the secure aggregation's channel: for a client that
#: receives it itself (with :meth:`~jointly.channel.Channel.recv_first`) and answers with :func:`reply_unmask`
UNMASK_REQUEST = f"{_UNMASK}/request"


@dataclass
class ClientState:
    """Everything one client holds between stages.  Secret: the two private keys, ``b_seed`` and the shares."""

    name: str
    server: str
    config: SecAggConfig
    c_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate, repr=False)
    s_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate, repr=False)
    b_seed: bytes = field(default_factory=lambda: secrets.token_bytes(KEY_BYTES), repr=False)
    roster: Roster | None = None
    session: bytes = b""
    own_shares: dict[str, shamir.Share] = field(default_factory=dict, repr=False)  # by recipient
    received: dict[str, shamir.Share] = field(default_factory=dict, repr=False)  # by sender, own included
    sharers: tuple[str, ...] = ()  # U2: clients whose shares everyone holds
    survivors: tuple[str, ...] = ()  # U3
    dropped: tuple[str, ...] = ()
    share_keys: dict[str, bytes] = field(default_factory=dict, repr=False)  # by peer: seals and opens its shares
    premask: np.ndarray | None = field(default=None, repr=False)  # every mask of the roster, made ahead

    def index(self, client: str) -> int:
        if self.roster is None:
            raise ConfigError("stage out of order: no roster yet")
        return self.roster.clients.index(client)


def advertise_keys(channel: Channel, state: ClientState) -> None:
    """Stage 1: send both public keys; receive and check the roster of clients that did."""
    send_keys(channel, state)
    receive_roster(channel, state)


def public_keys(state: ClientState) -> tuple[bytes, bytes]:
    """This client's two public keys ``(c_pk, s_pk)`` (a caller may carry them in a message of its own)."""
    return state.c_key.public_key().public_bytes_raw(), state.s_key.public_key().public_bytes_raw()


def send_keys(channel: Channel, state: ClientState) -> None:
    """Stage 1, first half: send both public keys (returns at once)."""
    c_pk, s_pk = public_keys(state)
    msg = AdvertiseKeys(c_pk=c_pk, s_pk=s_pk, config=state.config.fingerprint())
    channel.sub("advertise").send(state.server, "keys", msg)


def receive_roster(channel: Channel, state: ClientState) -> None:
    """Stage 1, second half: receive and check the roster of the clients that advertised keys."""
    ch = channel.sub("advertise")
    roster = ch.recv(state.server, "roster", timeout=state.config.client_timeout)
    accept_roster(state, roster, stage=ch.namespace)


def accept_roster(state: ClientState, value: object, *, stage: str = "advertise") -> None:
    """Check the roster (however it arrived): well formed, our keys unaltered, at least ``threshold`` clients."""
    c_pk, s_pk = public_keys(state)
    roster = expect(value, Roster, state.server)
    if state.roster is not None:
        raise ProtocolViolation("a second roster in one secure aggregation")
    if not (
        isinstance(roster.clients, list)
        and isinstance(roster.c_pks, list)
        and isinstance(roster.s_pks, list)
        and all(isinstance(c, str) for c in roster.clients)
    ):
        raise ProtocolViolation("the roster is malformed")
    n = len(roster.clients)
    if not (len(roster.c_pks) == len(roster.s_pks) == n and len(set(roster.clients)) == n):
        raise ProtocolViolation("the roster is malformed")
    keys = roster.c_pks + roster.s_pks
    if not all(isinstance(k, bytes) and len(k) == KEY_BYTES for k in keys) or len(set(keys)) != 2 * n:
        raise ProtocolViolation("the roster holds malformed or repeated public keys")
    if state.name not in roster.clients:
        raise ProtocolViolation(f"the roster does not list {state.name!r}")
    i = roster.clients.index(state.name)
    if roster.c_pks[i] != c_pk or roster.s_pks[i] != s_pk:
        raise ProtocolViolation("the roster altered this client's public keys")
    if not isinstance(roster.length, int) or roster.length < 1:
        raise ProtocolViolation("the roster has a bad vector length")
    require(n, state.config.threshold, party=state.server, stage=stage, what="advertised keys")
    state.config.check_capacity(n)
    state.roster = roster
    state.session = session_id(roster, state.config)


def share_keys(channel: Channel, state: ClientState) -> None:
    """Stage 2: send our shares, then receive the others'."""
    send_shares(channel, state)
    receive_shares(channel, state)


def send_shares(channel: Channel, state: ClientState) -> None:
    """Stage 2, first half: Shamir-share the mask key and the self-mask seed, each share sealed for its recipient."""
    channel.sub("share").send(state.server, "out", seal_shares(state))


def seal_shares(state: ClientState) -> SealedShares:
    """Stage 2's outgoing message (for a caller that carries it itself): our shares, each sealed for its recipient."""
    roster = state.roster
    if roster is None:
        raise ConfigError("stage out of order: advertise_keys first")
    if state.own_shares:
        raise ConfigError("stage out of order: this client's shares are already made")
    xs = [i + 1 for i in range(len(roster.clients))]
    secrets_ = [state.s_key.private_bytes_raw(), state.b_seed]
    shares = shamir.split(secrets_, state.config.threshold, xs)
    state.own_shares = dict(zip(roster.clients, shares, strict=True))
    sealed = {}
    for v in roster.clients:
        if v == state.name:
            continue
        key = _share_key(state, v)
        sealed[v] = seal(key, state.own_shares[v].to_bytes(), session=state.session, sender=state.name, recipient=v)
    return SealedShares(ciphertexts=sealed)


def _share_key(state: ClientState, peer: str) -> bytes:
    """The key that seals our shares for ``peer`` and opens its shares for us (derived once per roster)."""
    key = state.share_keys.get(peer)
    if key is None:
        if state.roster is None:
            raise ConfigError("stage out of order: no roster yet")
        c_pk = state.roster.c_pks[state.index(peer)]
        key = state.share_keys[peer] = share_key(state.c_key, c_pk, session=state.session, peer=peer)
    return key


def receive_shares(channel: Channel, state: ClientState) -> None:
    """Stage 2, second half: open the shares the server relayed from the others; U2 = their senders and us."""
    ch = channel.sub("share")
    if state.roster is None or not state.own_shares:
        raise ConfigError("stage out of order: send_shares first")
    open_shares(state, ch.recv(state.server, "in", timeout=state.config.client_timeout), stage=ch.namespace)


def open_shares(state: ClientState, value: object, *, stage: str = "share") -> None:
    """Stage 2 on the relayed shares however they arrived (``SealedShares``): open each; U2 = their senders and us."""
    roster = state.roster
    if roster is None or not state.own_shares:
        raise ConfigError("stage out of order: seal_shares first")
    if state.sharers:
        raise ProtocolViolation("a second bundle of shares in one secure aggregation")
    bundle = expect(value, SealedShares, state.server)
    me = state.index(state.name) + 1
    if not isinstance(bundle.ciphertexts, dict):
        raise ProtocolViolation("relayed shares are malformed")
    received = {state.name: state.own_shares[state.name]}
    for u, ct in bundle.ciphertexts.items():
        if u not in roster.clients or u == state.name:
            raise ProtocolViolation(f"relayed shares name an unknown sender {u!r}")
        plain = open_sealed(_share_key(state, u), ct, session=state.session, sender=u, recipient=state.name)
        try:
            share = shamir.Share.from_bytes(plain)
        except ConfigError as exc:
            raise ProtocolViolation(f"{u!r} sent a malformed share") from exc
        if share.x != me or len(share.y) != 2:
            raise ProtocolViolation(f"{u!r} sent a share for the wrong point")
        received[u] = share
    state.received = received
    state.sharers = tuple(c for c in roster.clients if c in received)
    require(len(state.sharers), state.config.threshold, party=state.server, stage=stage, what="shared keys")


def masked_input(channel: Channel, state: ClientState, vector: np.ndarray) -> None:
    """Stage 3: send ``vector + PRG(b) + sum_v ±PRG(s_uv)`` over the ring; the server sees only this."""
    channel.sub("masked").send(state.server, "input", masked_message(state, vector))


def masked_message(state: ClientState, vector: np.ndarray) -> MaskedInput:
    """Stage 3's message (for a caller that carries it itself): the encoded ``vector`` under every mask."""
    roster = state.roster
    if roster is None or not state.sharers:
        raise ConfigError("stage out of order: share_keys first")
    if vector.shape != (roster.length,) or vector.dtype != state.config.dtype:
        raise ConfigError(f"the update has {vector.size} coordinates, the server expects {roster.length}")
    premask, state.premask = state.premask, None  # a mask serves one input
    if premask is None:
        return MaskedInput(vector=vector + _masks(state, state.sharers))
    y = vector + premask
    gone = [v for v in roster.clients if v not in state.sharers]  # no shares from them: their masks come off
    if gone:
        y -= _masks(state, gone, self_mask=False)
    return MaskedInput(vector=y)


def precompute_mask(state: ClientState) -> None:
    """Expand this client's masks for every client of the roster now, before the input exists.

    The masks depend only on the keys, the roster and the self-mask seed, so a client can make them
    while it waits (for the next task, say); :func:`masked_message` then adds them in one pass and
    takes off the masks shared with any client that sent no shares.  Nothing is sent.
    """
    if state.roster is None:
        raise ConfigError("stage out of order: a roster first")
    state.premask = _masks(state, state.roster.clients)


def _masks(state: ClientState, peers: Sequence[str], *, self_mask: bool = True) -> np.ndarray:
    """``PRG(b) + sum_v ±PRG(s_uv)`` over ``peers`` (``+`` for a later client in the roster, ``-`` for an earlier)."""
    roster = state.roster
    if roster is None:
        raise ConfigError("stage out of order: no roster yet")
    expander = MaskExpander(roster.length, state.config.dtype)
    total = np.zeros(roster.length, dtype=state.config.dtype)
    if self_mask:
        expander.add(total, state.b_seed)
    me = state.index(state.name)
    for v in peers:
        if v == state.name:
            continue
        j = state.index(v)
        seed = mask_seed(state.s_key, roster.s_pks[j], session=state.session, peer=v)
        if me < j:
            expander.add(total, seed)
        else:
            expander.subtract(total, seed)
    return total


def unmask(channel: Channel, state: ClientState) -> None:
    """Stage 4: reveal shares of survivors' self-mask seeds and of dropped clients' mask keys, never both."""
    request = channel.recv(state.server, UNMASK_REQUEST, timeout=state.config.client_timeout)
    reply_unmask(channel, state, request)


def reply_unmask(channel: Channel, state: ClientState, request: object) -> None:
    """Stage 4's answer to the server's request (received under :data:`UNMASK_REQUEST`), sent to it."""
    ch = channel.sub(_UNMASK)
    ch.send(state.server, "shares", answer_unmask(state, request, stage=ch.namespace))


def answer_unmask(state: ClientState, value: object, *, stage: str = "unmask") -> UnmaskShares:
    """Stage 4's answer to the server's request however it arrived (``UnmaskRequest``), once per aggregation."""
    request = expect(value, UnmaskRequest, state.server)
    if state.survivors:
        raise ProtocolViolation("a second unmasking request in one secure aggregation")
    if not (isinstance(request.survivors, list) and isinstance(request.dropped, list)):
        raise ProtocolViolation("the unmask request is malformed")
    survivors, dropped = list(request.survivors), list(request.dropped)
    if (
        set(survivors) & set(dropped)
        or set(survivors) | set(dropped) != set(state.sharers)
        or len(set(survivors)) != len(survivors)
        or len(set(dropped)) != len(dropped)
        or state.name not in survivors
    ):
        raise ProtocolViolation("the unmask request does not split the clients that shared keys")
    require(len(survivors), state.config.threshold, party=state.server, stage=stage, what="sent inputs")
    state.survivors, state.dropped = tuple(survivors), tuple(dropped)
    self_seed = {u: state.received[u].only(SELF_SEED).to_bytes() for u in survivors}
    mask_key = {u: state.received[u].only(MASK_KEY).to_bytes() for u in dropped}
    return UnmaskShares(self_seed=self_seed, mask_key=mask_key)


@dataclass(frozen=True)
class SecAggClientResult:
    """What a client learns: who contributed to the sum and who dropped after sharing keys."""

    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


def prepare(channel: Channel, server: str, *, config: SecAggConfig, share: bool = True) -> ClientState:
    """Stage 1 and the sending half of stage 2: they need no input, so run them before the update exists.

    Sending the keys returns at once; the roster (and so stage 2) waits for every client's keys.  A
    client that computes its input meanwhile can send its keys only (``share=False``) and run
    :func:`share_when_ready` on a thread of its own while it computes; :func:`contribute` finishes
    whatever stages are still open before it masks.
    """
    state = ClientState(name=channel.party, server=server, config=config)
    send_keys(channel, state)
    if share:
        share_when_ready(channel, state)
    return state


def share_when_ready(channel: Channel, state: ClientState) -> None:
    """Wait for the roster, then seal and send our shares (the others' arrive while we compute our input)."""
    receive_roster(channel, state)
    send_shares(channel, state)


def contribute(
    channel: Channel, state: ClientState, update: Sequence[np.ndarray], *, num_examples: int
) -> SecAggClientResult:
    """Stages 3-4, after whatever of 1-2 :func:`prepare` left open: send the masked ``update``, then help unmask."""
    channel.sub("masked").send(state.server, "input", mask(channel, state, update, num_examples=num_examples))
    return help_unmask(channel, state)


def mask(channel: Channel, state: ClientState, update: Sequence[np.ndarray], *, num_examples: int) -> MaskedInput:
    """Finish stages 1-2 if still open, then stage 3's message, for a caller that carries it to the server
    itself (it must arrive where the server's :func:`~jointly.protocols.secagg.server.accept_masked` reads it);
    then call :func:`help_unmask`."""
    if state.roster is None:
        receive_roster(channel, state)
    if not state.own_shares:
        send_shares(channel, state)
    if not state.sharers:
        receive_shares(channel, state)
    return masked_message(state, encode_update(update, num_examples=num_examples, config=state.config))


def help_unmask(channel: Channel, state: ClientState) -> SecAggClientResult:
    """Stage 4: the server's unmasking request, answered; who contributed and who dropped."""
    unmask(channel, state)
    return SecAggClientResult(survivors=state.survivors, dropped=state.dropped)


def run_client(
    channel: Channel, server: str, update: Sequence[np.ndarray], *, num_examples: int, config: SecAggConfig
) -> ClientState:
    """All four stages; returns the final state (secrets included: for tests and audits, not for the wire)."""
    vector = encode_update(update, num_examples=num_examples, config=config)
    state = ClientState(name=channel.party, server=server, config=config)
    advertise_keys(channel, state)
    share_keys(channel, state)
    masked_input(channel, state, vector)
    unmask(channel, state)
    return state


def run_secagg_client(
    channel: Channel, server: str, update: Sequence[np.ndarray], *, num_examples: int, config: SecAggConfig
) -> SecAggClientResult:
    """This client's side of secure aggregation of ``update`` (weighted by ``num_examples`` if configured)."""
    state = prepare(channel, server, config=config)
    return contribute(channel, state, update, num_examples=num_examples)
