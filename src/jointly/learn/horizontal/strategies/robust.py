"""Byzantine-robust aggregators: coordinate-wise median, trimmed mean, Krum and Multi-Krum.

They defend the global model against a few clients that send arbitrary (scaled, flipped, poisoned)
updates.  As in the literature they **ignore ``num_examples``**: every client counts once, because a
Byzantine client could otherwise claim a huge example count and dominate.  They need the individual
updates, so they are not linear (``is_linear = False``): secure aggregation cannot wrap them and a
pre-aggregated update (``num_clients > 1``) is refused.  The server sees every individual update.

* :class:`Median` -- coordinate-wise median (Yin et al. 2018); for an even count the mean of the two
  middle values.  Tolerates fewer than half Byzantine clients per coordinate.
* :class:`TrimmedMean` -- per coordinate drop the ``floor(beta * n)`` largest and smallest values,
  average the rest (Yin et al. 2018).  Needs ``2 floor(beta n) < n``.
* :class:`Krum` -- Blanchard et al. 2017: score each update by the sum of squared L2 distances to
  its ``n - f - 2`` nearest other updates and keep the ``m`` best-scored ones (``m = 1``: Krum,
  the chosen update itself; ``m > 1``: Multi-Krum, the unweighted mean of the ``m`` chosen).  Needs
  ``n >= 2 f + 3``.  The chosen clients of the last round are in ``last_selected``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from jointly.errors import ConfigError
from jointly.learn.horizontal.strategies.base import ClientUpdate, Sampling, Strategy, TooFewClients, as_float64

__all__ = ["Krum", "Median", "MultiKrum", "TrimmedMean"]


def _stack(updates: Sequence[ClientUpdate], n_arrays: int) -> list[np.ndarray]:
    """For each tensor, an array of shape ``(n_clients, *tensor_shape)`` in float64."""
    per_client = [as_float64(u) for u in updates]
    return [np.stack([c[i] for c in per_client]) for i in range(n_arrays)]


class Median(Strategy):
    """Coordinate-wise median of the client models (sample weights ignored)."""

    def _combine(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        return [np.median(s, axis=0) for s in _stack(updates, len(global_weights))]


class TrimmedMean(Strategy):
    """Coordinate-wise mean after dropping the ``floor(beta * n)`` largest and smallest values."""

    def __init__(self, *, beta: float = 0.1, sampling: Sampling | None = None, local_epochs: int = 1) -> None:
        super().__init__(sampling=sampling, local_epochs=local_epochs)
        if not (math.isfinite(beta) and 0.0 <= beta < 0.5):
            raise ConfigError(f"trim fraction beta must be in [0, 0.5), got {beta}")
        self.beta = float(beta)

    def _combine(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        n = len(updates)
        k = math.floor(self.beta * n + 1e-9)
        if 2 * k >= n:  # cannot happen for beta < 0.5, kept as a guard
            raise TooFewClients(round, n, 2 * k + 1, "client updates arrived for the trim")
        out = []
        for s in _stack(updates, len(global_weights)):
            srt = np.sort(s, axis=0)
            out.append(srt[k : n - k].mean(axis=0))
        return out


class Krum(Strategy):
    """Krum (``m = 1``) / Multi-Krum (``m > 1``) for at most ``f`` Byzantine clients (weights ignored)."""

    def __init__(self, *, f: int, m: int = 1, sampling: Sampling | None = None, local_epochs: int = 1) -> None:
        super().__init__(sampling=sampling, local_epochs=local_epochs)
        if isinstance(f, bool) or not isinstance(f, int) or f < 0:
            raise ConfigError(f"f (Byzantine clients) must be a non-negative integer, got {f!r}")
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ConfigError(f"m (selected updates) must be a positive integer, got {m!r}")
        self.f = f
        self.m = m
        self.last_selected: list[str] = []

    def scores(self, updates: Sequence[ClientUpdate]) -> np.ndarray:
        """Each update's Krum score: sum of squared distances to its ``n - f - 2`` nearest neighbours."""
        flat = np.stack([np.concatenate([a.ravel() for a in as_float64(u)]) for u in updates])
        sq = np.einsum("ij,ij->i", flat, flat)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T, 0.0)
        n = len(updates)
        k = n - self.f - 2
        np.fill_diagonal(dist, np.inf)
        nearest = np.sort(dist, axis=1)[:, :k]
        return np.asarray(nearest.sum(axis=1))

    def _combine(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        n = len(updates)
        needed = max(2 * self.f + 3, self.m)
        if n < needed:
            raise TooFewClients(round, n, needed, f"client updates arrived (Krum with f={self.f}, m={self.m})")
        order = np.argsort(self.scores(updates), kind="stable")[: self.m]
        chosen = [updates[int(i)] for i in sorted(order)]
        self.last_selected = [u.client for u in chosen]
        stacks = _stack(chosen, len(global_weights))
        return [s.mean(axis=0) for s in stacks]


class MultiKrum(Krum):
    """Multi-Krum: the unweighted mean of the ``m`` best-scored updates (``m`` must be given)."""

    def __init__(self, *, f: int, m: int, sampling: Sampling | None = None, local_epochs: int = 1) -> None:
        super().__init__(f=f, m=m, sampling=sampling, local_epochs=local_epochs)
