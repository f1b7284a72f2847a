"""Wire messages of federated training between the aggregator and its clients (typed, safe codec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from jointly.channel.codec import message
from jointly.errors import ProtocolViolation
from jointly.protocols.secagg import MaskedInput, Roster, SealedShares

_M = TypeVar("_M")


@message("jointly.fl.Start")
@dataclass(frozen=True)
class Start:
    """Aggregator -> every client: training runs rounds ``first_round..rounds`` (``first_round > 1`` on resume)."""

    first_round: int
    rounds: int


@message("jointly.fl.Moments")
@dataclass(frozen=True)
class Moments:
    """Client -> aggregator (tables only): per-feature count, sum and sum of squares of its training rows.

    Aggregator -> clients: the federation-wide mean and standard deviation (``total`` and ``square`` unused).
    """

    count: int
    total: np.ndarray
    square: np.ndarray


@message("jointly.fl.Task")
@dataclass(frozen=True)
class Task:
    """Aggregator -> client, once per round: the global model, and whether to train on it.

    ``stop``: training ended early (the privacy budget cannot pay for this round); no weights follow.
    ``secagg_threshold``: >0 if the update goes through secure aggregation with that threshold.
    ``secagg_roster``: the secure aggregation's roster, made of the keys this client sent ahead in an
    earlier reply (``next_keys``); None: the roster came ahead (``next_roster``) or the keys are
    exchanged in this round's own ``secagg`` stage.
    ``secagg_shares``: the other clients' sealed shares for this round, relayed, when this round's
    roster came ahead in the last task and this client's shares in its last reply (``next_shares``).
    ``next_roster``/``next_threshold``: the roster of the next round and its threshold, made of keys
    sent ahead, when the aggregator expects every client of this round in the next one: the client
    seals its shares for it while it trains and sends them in this round's reply.
    """

    round: int
    train: bool
    evaluate: bool
    weights: list[np.ndarray] | None
    config: dict[str, Any] = field(default_factory=dict)
    secagg_threshold: int = 0
    stop: str = ""
    secagg_roster: Roster | None = None
    secagg_shares: SealedShares | None = None
    next_roster: Roster | None = None
    next_threshold: int = 0


@message("jointly.fl.Reply")
@dataclass(frozen=True)
class Reply:
    """Client -> aggregator, once per round.

    ``weights`` is the client's new local model, or None when the update travels masked through
    secure aggregation (then ``num_examples`` is 0 too: the count is inside the masked sum).
    ``eval``: statistics of the global model it received on the client's test rows (see
    :class:`~jointly.learn.horizontal.trainer.EvalStats`), or None.
    ``masked``: under secure aggregation, the client's masked update (stage 3 of
    :mod:`jointly.protocols.secagg`; uniformly distributed on its own).
    ``next_keys``: under secure aggregation, fresh X25519 public keys ``[c_pk, s_pk]`` by later round
    (the next two, each sent once), so a round's roster can travel with the task before it.
    ``next_shares``: under secure aggregation, the client's sealed shares for the next round's roster
    (the task's ``next_roster``), relayed to the others with the next task.
    """

    round: int
    num_examples: int
    weights: list[np.ndarray] | None
    train_loss: float
    eval: dict[str, Any] | None
    masked: MaskedInput | None = None
    next_keys: dict[int, list[bytes]] | None = None
    next_shares: SealedShares | None = None


@message("jointly.fl.Final")
@dataclass(frozen=True)
class Final:
    """Aggregator -> every client: the trained global model (every client keeps it) and how training ended."""

    weights: list[np.ndarray]
    rounds_run: int
    stop_reason: str


def expect(value: object, cls: type[_M], sender: str) -> _M:
    """``value`` as a ``cls`` message, or :class:`ProtocolViolation` naming the sender."""
    if not isinstance(value, cls):
        raise ProtocolViolation(f"{sender!r} sent {type(value).__name__} where {cls.__name__} was expected")
    return value


def check_weights(weights: object, shapes: list[tuple[int, ...]], sender: str) -> list[np.ndarray]:
    """A list of finite float arrays of exactly ``shapes``, or :class:`ProtocolViolation`."""
    if not isinstance(weights, list) or len(weights) != len(shapes):
        raise ProtocolViolation(f"{sender!r} sent a model with the wrong number of arrays")
    for i, (w, shape) in enumerate(zip(weights, shapes, strict=True)):
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f" or tuple(w.shape) != shape:
            raise ProtocolViolation(f"{sender!r} sent array {i} of the wrong type or shape (expected {shape})")
        if not np.isfinite(w).all():
            raise ProtocolViolation(f"{sender!r} sent array {i} with NaN or infinite values")
    return list(weights)
