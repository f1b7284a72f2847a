"""Roles of an MPC job and the session that runs a computation between them.

Roles follow the financial MPC standards: *data* parties provide inputs, *compute* parties hold
shares and compute (exactly two here: the engine is two-party), *result* parties receive outputs,
and an optional *dealer* hands out correlated randomness.  One party may hold several roles,
except that the dealer must not be a compute party.

:func:`run_session` runs on every party of the roles: data parties share their inputs, the
dealer serves (if any), the compute parties run ``compute`` on an engine, and the result
parties receive the opened outputs.  Nothing else reaches a result party; a data party that
holds no other role sees nothing after sending its shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from jointly.channel import Channel
from jointly.crypto.shares import DEFAULT_MPC_FRAC_BITS
from jointly.errors import ConfigError
from jointly.protocols.mpc.engine import TwoPartyEngine, reveal_to
from jointly.protocols.mpc.triples import DealerSource, PaillierSource, TripleSource, run_dealer

_T = TypeVar("_T")


@dataclass(frozen=True)
class MpcRoles:
    """Who does what in one MPC job (party names of the job's channel).

    ``compute``: exactly two parties.  ``dealer``: a party that deals Beaver triples and
    truncation pairs (trusted not to collude with a compute party); ``None``: the compute
    parties make triples themselves with Paillier (slower; party ``compute[0]`` owns the key).
    """

    data: tuple[str, ...]
    compute: tuple[str, ...]
    result: tuple[str, ...]
    dealer: str | None = None
    frac_bits: int = DEFAULT_MPC_FRAC_BITS
    paillier_bits: int = 2048
    allow_unsafe_key_size: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("data", "compute", "result"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(p, str) and p for p in value):
                raise ConfigError(f"MpcRoles.{name} must be a tuple of party names")
            if len(set(value)) != len(value):
                raise ConfigError(f"MpcRoles.{name} names a party twice")
        if len(self.compute) != 2:
            raise ConfigError(f"the MPC engine needs exactly two compute parties, got {len(self.compute)}")
        if not self.data or not self.result:
            raise ConfigError("an MPC job needs at least one data party and one result party")
        if self.dealer is not None and self.dealer in self.compute:
            raise ConfigError(f"the dealer {self.dealer!r} must not be a compute party")

    @property
    def parties(self) -> tuple[str, ...]:
        names = [*self.data, *self.compute, *self.result, *([self.dealer] if self.dealer else [])]
        return tuple(dict.fromkeys(names))

    @property
    def pair(self) -> tuple[str, str]:
        return (self.compute[0], self.compute[1])

    def check(self, channel: Channel) -> None:
        missing = [p for p in self.parties if p not in channel.parties]
        if missing:
            raise ConfigError(f"{missing} are MPC roles but not parties of this job")


def make_engine(channel: Channel, roles: MpcRoles) -> TwoPartyEngine:
    """The engine of a compute party (dealer-fed or with Paillier triples)."""
    source: TripleSource
    if roles.dealer is not None:
        source = DealerSource(channel, roles.pair, roles.dealer)
    else:
        source = PaillierSource(
            channel.among(roles.compute),
            roles.pair,
            key_bits=roles.paillier_bits,
            allow_unsafe_key_size=roles.allow_unsafe_key_size,
        )
    return TwoPartyEngine(channel, roles.pair, source, frac_bits=roles.frac_bits)


def run_session(
    channel: Channel,
    roles: MpcRoles,
    compute: Callable[[TwoPartyEngine], np.ndarray],
    *,
    tag: str = "result",
) -> np.ndarray | None:
    """Dealer serves, compute parties run ``compute`` (returns their result *share*, ring words), result
    parties get the opened ring words; every other party gets ``None``.

    Inputs must have been shared before (see :func:`~jointly.protocols.mpc.engine.share_input`).
    """
    me = channel.party
    share: np.ndarray | None = None
    if me == roles.dealer:
        run_dealer(channel, roles.pair)
    if me in roles.compute:
        engine = make_engine(channel, roles)
        try:
            share = compute(engine)
        finally:
            engine.close()
    return reveal_to(channel, roles.pair, roles.result, share, tag=tag)
