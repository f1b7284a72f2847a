"""Secure aggregation (Bonawitz et al., CCS 2017): the server learns the sum of the clients' updates, nothing else.

Parties: one server (aggregator) and ``n`` clients.  Clients never talk to each
other: every client-to-client message is relayed by the server, encrypted.
Each client calls :func:`run_secagg_client`, the server :func:`run_secagg_server`,
all with the same :class:`SecAggConfig`.  Tags live under ``advertise/``, ``share/``,
``masked/`` and ``unmask/`` of the channel given: run each training round on its
own view (``channel.sub(f"round{r}")``).

Stages (one function per stage in :mod:`.client` and :mod:`.server`, each over
an explicit state dataclass, as in Flower's SecAgg+ workflow):

1. *advertise*: each client makes two X25519 key pairs, ``(c_sk, c_pk)`` for
   share encryption and ``(s_sk, s_pk)`` for pairwise masks, and sends both public
   keys.  The server broadcasts the roster U1 (names, keys, vector length).
   Every derived key is bound to a session id, the hash of the roster and config.
2. *share*: each client draws a self-mask seed ``b`` and Shamir-shares ``s_sk``
   and ``b`` ``t``-of-``|U1|`` (:mod:`jointly.crypto.shamir`).  The share for client
   ``v`` is sealed with AES-256-GCM under ``HKDF-SHA256(X25519(c_sk_u, c_pk_v))``,
   with sender, recipient and session authenticated, and relayed by the server.
   U2 = the clients whose shares were relayed.
3. *masked*: each client encodes its update to ``Z_(2**modulus_bits)`` (see
   :class:`SecAggConfig`: clip, optional weighting by ``num_examples``, fixed
   point, ``num_examples`` as a last coordinate) and sends
   ``x_u + PRG(b_u) + sum_{v in U2, v > u} PRG(s_uv) - sum_{v in U2, v < u} PRG(s_uv)``,
   where ``s_uv = HKDF-SHA256(X25519(s_sk_u, s_pk_v))`` over the full shared secret
   and PRG is the AES-256-CTR keystream.  U3 = the clients that sent one.
4. *unmask*: the server sends U3 and U2 - U3 to U3.  Each survivor returns its
   shares of ``b_v`` for ``v`` in U3 and of ``s_sk_u`` for ``u`` in U2 - U3 (never
   both for one client, which would reveal that client's input).  The server
   rebuilds them from ``t`` answers, checks each rebuilt ``s_sk_u`` against
   ``s_pk_u``, strips the masks and decodes the sum.

Stages 1-2 need no input: :func:`prepare` / :func:`open_round` run them, and
:func:`contribute` / :func:`close_round` run 3-4 once the input exists, so a
federated-learning round hides their round trips behind the clients' training.
A client waits for nothing before it computes its input: it sends its keys
(``prepare(share=False)``), runs :func:`share_when_ready` (roster in, shares out)
on a thread of its own, and the others' shares arrive meanwhile.  A caller that
carries the stages' messages inside its own uses the sans-IO halves instead:
:func:`public_keys`/:func:`accept_keys` (stage 1), :func:`accept_roster`,
:func:`seal_shares`/:func:`route_shares`/:func:`open_shares` (stage 2),
:func:`mask`/:func:`finish_round` (stage 3); federated learning sends a round's keys,
roster and shares ahead inside the previous round's messages this way.

Dropouts: clients that miss a stage deadline (``config.timeout``) are dropped;
after stage 2 their pairwise masks are removed via shares.  If fewer than ``t``
clients are left at any stage the server raises
:class:`~jointly.errors.ProtocolAborted` naming the stage.

What each party learns.  The server: the roster, who dropped when, the sum of
U3's encoded updates and their total ``num_examples``; each masked vector is
uniformly distributed on its own.  A client: the roster and U2, U3.  Any
``t - 1`` colluding clients learn nothing of the others' masks.  Protected from
the server: every single input, as long as fewer than ``t`` clients collude with
it and it follows the protocol (semi-honest; the malicious-server variant with
signed rosters and consistency checks is not implemented).

Not implemented: the SecAgg+ sparse k-regular neighbour graph (Bell et al. 2020):
every client masks with and shares to all others, costing ``O(n)`` PRG expansions
per client and ``O(n * |U2 - U3|)`` on the server.
"""

from __future__ import annotations

from jointly.protocols.secagg.client import (
    UNMASK_REQUEST,
    ClientState,
    SecAggClientResult,
    accept_roster,
    answer_unmask,
    contribute,
    help_unmask,
    mask,
    open_shares,
    precompute_mask,
    prepare,
    public_keys,
    reply_unmask,
    run_secagg_client,
    seal_shares,
    send_shares,
    share_when_ready,
)
from jointly.protocols.secagg.common import (
    AdvertiseKeys,
    MaskedInput,
    Roster,
    SealedShares,
    SecAggConfig,
    SecAggResult,
    encode_update,
    vector_length,
)
from jointly.protocols.secagg.server import (
    ServerState,
    accept_keys,
    begin,
    close_round,
    collect_keys,
    finish_round,
    open_round,
    relay_shares,
    route_shares,
    run_secagg_server,
)

__all__ = [
    "UNMASK_REQUEST",
    "AdvertiseKeys",
    "ClientState",
    "MaskedInput",
    "Roster",
    "SealedShares",
    "SecAggClientResult",
    "SecAggConfig",
    "SecAggResult",
    "ServerState",
    "accept_keys",
    "accept_roster",
    "answer_unmask",
    "begin",
    "close_round",
    "collect_keys",
    "contribute",
    "encode_update",
    "finish_round",
    "help_unmask",
    "mask",
    "open_round",
    "open_shares",
    "precompute_mask",
    "prepare",
    "public_keys",
    "relay_shares",
    "reply_unmask",
    "route_shares",
    "run_secagg_client",
    "run_secagg_server",
    "seal_shares",
    "send_shares",
    "share_when_ready",
    "vector_length",
]
