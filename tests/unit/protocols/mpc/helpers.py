"""Run two compute parties (and a dealer) over the in-memory channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jointly.channel import Channel
from jointly.channel.memory import MemoryHub
from jointly.crypto.shares import SharedTensor, encode_fixed, split
from jointly.protocols.mpc import MpcRoles, TwoPartyEngine, make_engine, run_dealer

F = 16
PAIR = ("p0", "p1")
DEALER = "dealer"


def roles(mode: str) -> MpcRoles:
    return MpcRoles(
        data=PAIR,
        compute=PAIR,
        result=PAIR[:1],
        dealer=DEALER if mode == "dealer" else None,
        paillier_bits=512,
        allow_unsafe_key_size=True,
    )


def run_pair(
    mode: str, fn: Callable[[TwoPartyEngine, int], Any], *, inputs: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, Any], MemoryHub]:
    """Run ``fn(engine, party_index, shares)`` on both compute parties; ``inputs`` are split between them."""
    r = roles(mode)
    hub = MemoryHub([*PAIR, DEALER])

    def party(ch: Channel) -> Any:
        eng = make_engine(ch, r)
        try:
            return fn(eng, eng.party_index)
        finally:
            eng.close()

    fns: dict[str, Callable[[Channel], Any]] = {p: party for p in PAIR}
    if mode == "dealer":
        fns[DEALER] = lambda ch: run_dealer(ch, PAIR)
    else:
        fns[DEALER] = lambda ch: None
    return hub.run(fns, timeout=60), hub


def shares_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return split(encode_fixed(values, F))


def tensor(eng: TwoPartyEngine, pair: tuple[np.ndarray, np.ndarray]) -> SharedTensor:
    return eng.tensor(pair[eng.party_index])
