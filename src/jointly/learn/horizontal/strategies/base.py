"""What every horizontal-FL aggregation strategy shares: client updates, sampling, checks.

A model is a list of float numpy arrays (one per tensor, float32 in practice); every client sends
arrays of the same shapes as the global model.  A strategy does three things each round:

1. :meth:`Strategy.configure_round` picks the clients that train (a seeded random fraction, never
   fewer than ``min_clients``);
2. :meth:`Strategy.client_config` says what the server tells them (local epochs, FedProx ``mu``,
   client learning rate);
3. :meth:`Strategy.aggregate` turns the updates that arrived into the next global model.

``aggregate`` is the only entry point for the updates, so cross-cutting features (differential
privacy, secure aggregation) are wrappers around a strategy, not flags on it.  A strategy with
``is_linear = True`` needs only the example-weighted *sum* of the updates and the total example
count; a secure-aggregation wrapper can therefore hand it a single pre-aggregated update
(``num_clients`` = how many clients it stands for, ``num_examples`` = their total, ``weights`` =
their weighted mean) and get exactly the same result.  Robust strategies (median, Krum, ...) need
the individual updates and refuse pre-aggregated ones.

What the server learns: every individual update it aggregates (unless a wrapper hides them), each
client's example count and the metrics the client chose to report.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from jointly.errors import ConfigError, JointlyError, ProtocolViolation

__all__ = ["ClientConfigValue", "ClientUpdate", "Sampling", "Strategy", "TooFewClients", "as_float64"]

ClientConfigValue = bool | int | float | str


class TooFewClients(JointlyError):
    """Fewer clients are available, or fewer updates arrived, than the strategy's ``min_clients``."""

    exit_code = 6
    http_status = 409

    def __init__(self, round: int, got: int, needed: int, what: str) -> None:
        self.round = round
        self.got = got
        self.needed = needed
        super().__init__(f"round {round}: {got} {what}, the strategy needs at least {needed}")


@dataclass(frozen=True)
class ClientUpdate:
    """One client's result for one round.

    ``weights``: the client's full local model (not the delta), one array per tensor, the same
    shapes as the global model.  ``num_examples``: how many training examples produced it (the
    weight in FedAvg).  ``num_clients``: how many clients this update stands for -- 1 for a
    client's own update, more for an update a wrapper pre-aggregated (its ``weights`` are then the
    example-weighted mean and ``num_examples`` the total).
    """

    client: str
    weights: list[np.ndarray]
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)
    num_clients: int = 1


@dataclass(frozen=True)
class Sampling:
    """Which clients train each round.

    ``fraction``: share of the available clients sampled each round (rounded up).
    ``min_clients``: never sample fewer, and refuse to aggregate if fewer updates arrive (so up to
    ``sampled - min_clients`` clients may drop out of a round).
    """

    fraction: float = 1.0
    min_clients: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0):
            raise ConfigError(f"sampling fraction must be in (0, 1], got {self.fraction}")
        if isinstance(self.min_clients, bool) or not isinstance(self.min_clients, int) or self.min_clients < 1:
            raise ConfigError(f"min_clients must be a positive integer, got {self.min_clients!r}")


def as_float64(update: ClientUpdate) -> list[np.ndarray]:
    """The update's arrays as float64 (for accurate sums); call after :meth:`Strategy.check_updates`."""
    return [np.asarray(w, dtype=np.float64) for w in update.weights]


class Strategy(ABC):
    """Base class: seeded client sampling, ``min_clients``, update checks; subclasses combine.

    Subclasses implement :meth:`_combine` (the checked updates -> the new global arrays, float64)
    and set ``is_linear``.  They keep any server state (optimiser moments) on ``self`` and expose it
    through :meth:`state_dict` / :meth:`load_state_dict` for checkpoints.
    """

    is_linear: ClassVar[bool] = False
    accepts_aggregated: ClassVar[bool] = False

    def __init__(self, *, sampling: Sampling | None = None, local_epochs: int = 1) -> None:
        if isinstance(local_epochs, bool) or not isinstance(local_epochs, int) or local_epochs < 1:
            raise ConfigError(f"local_epochs must be a positive integer, got {local_epochs!r}")
        self.sampling = sampling if sampling is not None else Sampling()
        self.local_epochs = local_epochs

    @property
    def min_clients(self) -> int:
        """Fewest clients sampled per round, and fewest updates :meth:`aggregate` accepts."""
        return self.sampling.min_clients

    def configure_round(self, round: int, clients: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Sample ``ceil(fraction * len(clients))`` clients (at least ``min_clients``) with ``rng``.

        Returns them in the order of ``clients``.  The same ``rng`` state gives the same sample.
        Raises :class:`TooFewClients` if fewer than ``min_clients`` are available.
        """
        names = list(clients)
        if len(set(names)) != len(names):
            raise ConfigError(f"round {round}: duplicate client names in {names}")
        if len(names) < self.min_clients:
            raise TooFewClients(round, len(names), self.min_clients, "clients are available")
        k = max(self.min_clients, math.ceil(self.sampling.fraction * len(names) - 1e-9))
        k = min(k, len(names))
        picked = rng.choice(len(names), size=k, replace=False)
        return [names[i] for i in sorted(int(i) for i in picked)]

    def client_config(self, round: int) -> dict[str, ClientConfigValue]:
        """What the server sends the sampled clients with the global model for ``round``."""
        return {"round": round, "local_epochs": self.local_epochs}

    def aggregate(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        """The next global model from this round's updates (same shapes and dtypes as ``global_weights``).

        Raises :class:`TooFewClients` if updates from fewer than ``min_clients`` clients arrived and
        :class:`ProtocolViolation` (naming the client) for a malformed update.
        """
        self.check_updates(round, global_weights, updates)
        combined = self._combine(round, global_weights, updates)
        return [
            np.asarray(c).astype(np.asarray(g).dtype, copy=False) for c, g in zip(combined, global_weights, strict=True)
        ]

    @abstractmethod
    def _combine(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        """Checked updates -> new global arrays (any float dtype; :meth:`aggregate` casts back)."""

    def check_updates(self, round: int, global_weights: Sequence[np.ndarray], updates: Sequence[ClientUpdate]) -> None:
        """Refuse too few updates, duplicates, wrong shapes/dtypes, non-finite values, bad counts."""
        for g in global_weights:
            if np.asarray(g).dtype.kind != "f":
                raise ConfigError(f"global model arrays must be floating point, got {np.asarray(g).dtype}")
        seen: set[str] = set()
        for u in updates:
            if u.client in seen:
                raise ProtocolViolation(f"round {round}: client {u.client!r} sent more than one update")
            seen.add(u.client)
            self._check_one(round, global_weights, u)
        represented = sum(u.num_clients for u in updates)
        if represented < self.min_clients:
            raise TooFewClients(round, represented, self.min_clients, "client updates arrived")

    def _check_one(self, round: int, global_weights: Sequence[np.ndarray], u: ClientUpdate) -> None:
        who = f"round {round}: client {u.client!r}"
        if isinstance(u.num_examples, bool) or not isinstance(u.num_examples, int | np.integer) or u.num_examples < 1:
            raise ProtocolViolation(f"{who} reported num_examples={u.num_examples!r}; need a positive integer")
        if isinstance(u.num_clients, bool) or not isinstance(u.num_clients, int) or u.num_clients < 1:
            raise ProtocolViolation(f"{who} has num_clients={u.num_clients!r}; need a positive integer")
        if u.num_clients > 1 and not self.accepts_aggregated:
            raise ProtocolViolation(
                f"{who} is a pre-aggregated update of {u.num_clients} clients; "
                f"{type(self).__name__} needs the individual updates"
            )
        if len(u.weights) != len(global_weights):
            raise ProtocolViolation(f"{who} sent {len(u.weights)} arrays, the global model has {len(global_weights)}")
        for i, (w, g) in enumerate(zip(u.weights, global_weights, strict=True)):
            if not isinstance(w, np.ndarray):
                raise ProtocolViolation(f"{who} sent array {i} as {type(w).__name__}, not a numpy array")
            if w.shape != np.shape(g):
                raise ProtocolViolation(f"{who} sent array {i} of shape {w.shape}, expected {np.shape(g)}")
            if w.dtype.kind != "f":
                raise ProtocolViolation(f"{who} sent array {i} of dtype {w.dtype}, expected floating point")
            if not np.all(np.isfinite(w)):
                raise ProtocolViolation(f"{who} sent array {i} with NaN or infinite values")

    def state_dict(self) -> dict[str, Any]:
        """Server state for a checkpoint (plain ints and lists of numpy arrays); empty if stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        if state:
            raise ConfigError(f"{type(self).__name__} is stateless; got state keys {sorted(state)}")
