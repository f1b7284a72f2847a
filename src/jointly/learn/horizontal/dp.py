"""Client-level differential privacy for horizontal FL, as wrappers around any mean-based strategy.

Like Flower's ``DifferentialPrivacyServerSideFixedClipping(strategy, ...)``: privacy is a wrapper,
not a flag on every strategy.  The wrappers type the strategy structurally (anything with
``aggregate(round, global_weights, updates) -> list[np.ndarray]`` whose updates are dataclasses with
``client``, ``weights`` and ``num_examples`` fields), so this module does not depend on the
strategies package.

What is protected, from whom.  The unit is a *client*: the released global models are
``(epsilon, delta)``-DP with respect to adding or removing one client's whole contribution
(DP-FedAvg, McMahan et al. 2018).  Each client's update delta ``weights - global`` is clipped to
L2 norm ``C``; the clipped deltas are averaged *without* example weights (a weighted mean has no
bounded sensitivity); Gaussian noise of std ``z * C / m`` is added to the mean of ``m`` deltas.
The wrapped strategy then receives this privatised mean as a *single* pseudo-update
(``num_examples=1``): FedAvg returns it as is, server optimisers (FedAdam, FedYogi, ...) treat it
as their pseudo-gradient, which is post-processing and costs no privacy.  (Adding noise *after* a
server optimiser, as Flower does, would not be DP: its ``1/sqrt(v)`` scaling is data-dependent.)
Robust aggregators that need the individual updates (median, Krum, trimmed mean) see one update
and are therefore not meaningful under these wrappers.

Server-side wrappers trust the server with the individual updates (central DP); the guarantee
holds against everyone who sees the models.  :class:`DpClientFixedClipping` with
:class:`DpServerClientSideNoise` moves clipping and noise to the clients (each adds
``N(0, (z C)^2 / m)``, so the sum of ``m`` shares has std ``z C``); combined with secure
aggregation the server also learns only the noised sum.  Without secure aggregation each
individual update carries only ``1/sqrt(m)`` of the noise.

The privacy accounting: the accountant's sampling rate is (clients sampled per round) / (all
clients) and one round is one step.  The budget is spent *before* anything is released: call
:meth:`begin_round` before sampling clients to refuse a round that would overspend before any
client works; ``aggregate`` pays for the round itself if ``begin_round`` was not called.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget
from jointly.dp.mechanisms import (
    AdaptiveClipper,
    adaptive_update_noise_multiplier,
    add_gaussian_noise,
    clip_by_global_norm,
    secure_rng,
)
from jointly.errors import ConfigError, ProtocolViolation

__all__ = [
    "DpClientFixedClipping",
    "DpServerAdaptiveClipping",
    "DpServerClientSideNoise",
    "DpServerFixedClipping",
]


class _Update(Protocol):
    @property
    def client(self) -> str: ...
    @property
    def weights(self) -> Sequence[np.ndarray]: ...
    @property
    def num_examples(self) -> int: ...


U = TypeVar("U", bound=_Update)
U_contra = TypeVar("U_contra", contravariant=True)


class _Strategy(Protocol[U_contra]):
    def aggregate(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[U_contra], /
    ) -> list[np.ndarray]: ...


def _deltas(global_weights: Sequence[np.ndarray], update: _Update) -> list[np.ndarray]:
    weights = list(update.weights)
    if len(weights) != len(global_weights):
        raise ProtocolViolation(
            f"client {update.client!r} sent {len(weights)} arrays, the global model has {len(global_weights)}"
        )
    out = []
    for i, (w, g) in enumerate(zip(weights, global_weights, strict=True)):
        w_arr = np.asarray(w)
        if w_arr.shape != np.shape(g):
            raise ProtocolViolation(
                f"client {update.client!r} sent array {i} of shape {w_arr.shape}, expected {np.shape(g)}"
            )
        out.append(w_arr.astype(np.float64) - np.asarray(g, dtype=np.float64))
    return out


def _pseudo_update(
    template: U, global_weights: Sequence[np.ndarray], mean_delta: Sequence[np.ndarray], *, clients: int = 1
) -> U:
    weights = [
        np.asarray(np.asarray(g, dtype=np.float64) + d, dtype=np.asarray(g).dtype)
        for g, d in zip(global_weights, mean_delta, strict=True)
    ]
    changes: dict[str, Any] = {"client": "dp-aggregate", "weights": weights, "num_examples": 1}
    try:
        names = {f.name for f in dataclasses.fields(template)}  # type: ignore[arg-type]
        if "metrics" in names:
            changes["metrics"] = {}
        if "num_clients" in names:  # the one stand-in update speaks for every client of the round
            changes["num_clients"] = clients
        return dataclasses.replace(template, **changes)  # type: ignore[type-var]
    except TypeError as exc:
        raise ConfigError(
            f"DP wrappers need client updates that are dataclasses with client/weights/num_examples: {exc}"
        ) from exc


class _DpServerBase(Generic[U]):
    """Shared round bookkeeping: pay before release, delegate unknown attributes to the strategy."""

    def __init__(
        self,
        strategy: _Strategy[U],
        *,
        budget: PrivacyBudget,
        accountant: RdpAccountant,
        expected_clients: int | None,
        rng: np.random.Generator | None,
    ) -> None:
        if expected_clients is not None and expected_clients < 1:
            raise ConfigError(f"expected_clients must be at least 1, got {expected_clients}")
        self.strategy = strategy
        self.budget = budget
        self.accountant = accountant
        self.expected_clients = expected_clients
        self._rng = rng if rng is not None else secure_rng()
        self._paid_round: int | None = None

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found here: configure_fit, evaluate, ... of the wrapped strategy.
        if name.startswith("_") or name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)

    def would_exceed_budget(self, rounds: int = 1) -> bool:
        """True if ``rounds`` more rounds would overspend the budget (nothing is spent)."""
        return self.budget.would_exceed(self.accountant, rounds)

    def begin_round(self, round: int) -> float:
        """Pay for ``round`` now (raises ``BudgetExhausted`` and spends nothing if it does not fit)."""
        if self._paid_round == round:
            return self.budget.spent
        spent = self.budget.check_and_spend(self.accountant, 1)
        self._paid_round = round
        return spent

    def _pay(self, round: int) -> None:
        if self._paid_round != round:
            self.begin_round(round)
        self._paid_round = None  # a paid round releases exactly once

    def _denominator(self, updates: Sequence[U]) -> int:
        m = self.expected_clients if self.expected_clients is not None else len(updates)
        if m < 1:
            raise ConfigError("no client updates to aggregate (set expected_clients for a fixed denominator)")
        return m

    def _release(
        self,
        round: int,
        global_weights: list[np.ndarray],
        template: U,
        mean_delta: list[np.ndarray],
        *,
        clients: int = 1,
    ) -> list[np.ndarray]:
        update = _pseudo_update(template, global_weights, mean_delta, clients=clients)
        return self.strategy.aggregate(round, global_weights, [update])


def _check_noise(noise_multiplier: float, accountant: RdpAccountant) -> float:
    if not math.isfinite(noise_multiplier) or noise_multiplier <= 0:
        raise ConfigError(f"noise_multiplier must be positive, got {noise_multiplier}")
    if not math.isclose(noise_multiplier, accountant.noise_multiplier, rel_tol=1e-12):
        raise ConfigError(
            f"noise_multiplier {noise_multiplier} differs from the accountant's {accountant.noise_multiplier}"
        )
    return float(noise_multiplier)


class DpServerFixedClipping(_DpServerBase[U]):
    """Central DP-FedAvg with a fixed clip norm (server clips and adds noise).

    ``expected_clients``: if given, the sum of clipped deltas is divided by it (the fixed-denominator
    estimator of DP-FedAvg, right for Poisson client sampling); otherwise by the number of updates
    that arrived (right for a fixed number of sampled clients).
    """

    def __init__(
        self,
        strategy: _Strategy[U],
        *,
        noise_multiplier: float,
        clip_norm: float,
        budget: PrivacyBudget,
        accountant: RdpAccountant,
        expected_clients: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(strategy, budget=budget, accountant=accountant, expected_clients=expected_clients, rng=rng)
        self.noise_multiplier = _check_noise(noise_multiplier, accountant)
        if not math.isfinite(clip_norm) or clip_norm <= 0:
            raise ConfigError(f"clip_norm must be positive, got {clip_norm}")
        self.clip_norm = float(clip_norm)

    def aggregate(self, round: int, global_weights: list[np.ndarray], updates: Sequence[U]) -> list[np.ndarray]:
        """Clip, average, add ``N(0, (z C / m)^2)``, hand the result to the wrapped strategy."""
        m = self._denominator(updates)
        deltas = [_deltas(global_weights, u) for u in updates]  # validate before paying
        self._pay(round)
        total = [np.zeros(np.shape(g)) for g in global_weights]
        for d in deltas:
            clipped, _ = clip_by_global_norm(d, self.clip_norm)
            total = [t + c for t, c in zip(total, clipped, strict=True)]
        mean = add_gaussian_noise([t / m for t in total], self.noise_multiplier * self.clip_norm / m, self._rng)
        return (
            self._release(round, global_weights, updates[0], mean, clients=len(updates))
            if updates
            else _noised_global(global_weights, mean)
        )


class DpServerAdaptiveClipping(_DpServerBase[U]):
    """Central DP-FedAvg with adaptive clipping (Andrew et al. 2021).

    ``noise_multiplier`` is the *total* ``z`` the accountant is set up with; part of it pays for the
    noised count of unclipped updates (std ``clipped_count_stddev``, default ``m / 20`` with ``m`` =
    ``expected_clients``), the update gets ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``.  The clip
    norm then moves toward the ``target_quantile`` of client update norms.
    """

    def __init__(
        self,
        strategy: _Strategy[U],
        *,
        noise_multiplier: float,
        initial_clip_norm: float,
        budget: PrivacyBudget,
        accountant: RdpAccountant,
        expected_clients: int,
        target_quantile: float = 0.5,
        clip_learning_rate: float = 0.2,
        clipped_count_stddev: float | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(strategy, budget=budget, accountant=accountant, expected_clients=expected_clients, rng=rng)
        self.noise_multiplier = _check_noise(noise_multiplier, accountant)
        sigma_b = clipped_count_stddev if clipped_count_stddev is not None else expected_clients / 20.0
        self.update_noise_multiplier = adaptive_update_noise_multiplier(self.noise_multiplier, sigma_b)
        self.clipper = AdaptiveClipper(
            initial_clip_norm,
            target_quantile=target_quantile,
            learning_rate=clip_learning_rate,
            clipped_count_stddev=sigma_b,
        )

    @property
    def clip_norm(self) -> float:
        """The clip norm the next round will use."""
        return self.clipper.clip_norm

    def aggregate(self, round: int, global_weights: list[np.ndarray], updates: Sequence[U]) -> list[np.ndarray]:
        """Clip at the current norm, noise the mean with ``z_delta``, then update the clip norm."""
        m = self._denominator(updates)
        deltas = [_deltas(global_weights, u) for u in updates]
        self._pay(round)
        c = self.clipper.clip_norm
        total = [np.zeros(np.shape(g)) for g in global_weights]
        norms = []
        for d in deltas:
            clipped, norm = clip_by_global_norm(d, c)
            norms.append(norm)
            total = [t + x for t, x in zip(total, clipped, strict=True)]
        mean = add_gaussian_noise([t / m for t in total], self.update_noise_multiplier * c / m, self._rng)
        self.clipper.update(norms, self._rng, expected=m)
        return (
            self._release(round, global_weights, updates[0], mean, clients=len(updates))
            if updates
            else _noised_global(global_weights, mean)
        )

    def state_dict(self) -> dict[str, Any]:
        """Clip norm for checkpoints (the budget and the accountant are saved by their owners)."""
        return {"clip_norm": self.clipper.clip_norm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        clip = float(state["clip_norm"])
        if not math.isfinite(clip) or clip <= 0:
            raise ConfigError(f"malformed adaptive clipping state: clip_norm={clip}")
        self.clipper.clip_norm = clip


class DpClientFixedClipping:
    """Client side of local-noise DP-FedAvg: clip the delta to ``clip_norm``, add this client's noise share.

    The share is ``N(0, (z C)^2 / m)`` with ``m = expected_clients``, so the sum over ``m`` clients
    carries ``N(0, (z C)^2)`` and the server's mean ``N(0, (z C / m)^2)``, as in the central version.
    Use with :class:`DpServerClientSideNoise` on the server, ideally over secure aggregation.
    """

    def __init__(
        self,
        *,
        noise_multiplier: float,
        clip_norm: float,
        expected_clients: int,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not math.isfinite(noise_multiplier) or noise_multiplier <= 0:
            raise ConfigError(f"noise_multiplier must be positive, got {noise_multiplier}")
        if not math.isfinite(clip_norm) or clip_norm <= 0:
            raise ConfigError(f"clip_norm must be positive, got {clip_norm}")
        if expected_clients < 1:
            raise ConfigError(f"expected_clients must be at least 1, got {expected_clients}")
        self.noise_multiplier = float(noise_multiplier)
        self.clip_norm = float(clip_norm)
        self.expected_clients = int(expected_clients)
        self._rng = rng if rng is not None else secure_rng()

    @property
    def noise_std(self) -> float:
        """Std of this client's noise share, ``z C / sqrt(m)``."""
        return self.noise_multiplier * self.clip_norm / math.sqrt(self.expected_clients)

    def __call__(self, global_weights: Sequence[np.ndarray], local_weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Weights to send: ``global + clip(local - global) + noise share`` (dtype of the global weights)."""
        if len(local_weights) != len(global_weights):
            raise ConfigError(f"{len(local_weights)} local arrays for a model of {len(global_weights)}")
        delta = [
            np.asarray(w, dtype=np.float64) - np.asarray(g, dtype=np.float64)
            for w, g in zip(local_weights, global_weights, strict=True)
        ]
        clipped, _ = clip_by_global_norm(delta, self.clip_norm)
        noised = add_gaussian_noise(clipped, self.noise_std, self._rng)
        return [
            np.asarray(np.asarray(g, dtype=np.float64) + d, dtype=np.asarray(g).dtype)
            for g, d in zip(global_weights, noised, strict=True)
        ]


class DpServerClientSideNoise(_DpServerBase[U]):
    """Server side of local-noise DP-FedAvg: unweighted mean of the (already noised) client updates.

    Refuses (``ProtocolViolation``) a round with fewer than ``expected_clients`` updates: fewer
    noise shares would mean less noise than the accounting assumes.  It cannot check that clients
    really clipped and noised; that is the clients' (and their wrapper's) job.
    """

    def __init__(
        self,
        strategy: _Strategy[U],
        *,
        budget: PrivacyBudget,
        accountant: RdpAccountant,
        expected_clients: int,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__(strategy, budget=budget, accountant=accountant, expected_clients=expected_clients, rng=rng)

    def aggregate(self, round: int, global_weights: list[np.ndarray], updates: Sequence[U]) -> list[np.ndarray]:
        """Average the client deltas without example weights and hand the mean to the wrapped strategy."""
        m = self._denominator(updates)
        counts = [int(getattr(u, "num_clients", 1)) for u in updates]  # a secure sum stands for several clients
        clients = sum(counts)
        if clients < m:
            raise ProtocolViolation(
                f"round {round}: {clients} of {m} expected clients sent updates; fewer noise shares than the "
                "privacy accounting assumes, round refused"
            )
        deltas = [_deltas(global_weights, u) for u in updates]
        self._pay(round)
        mean = [
            sum((d[i] * c for d, c in zip(deltas, counts, strict=True)), np.zeros(np.shape(g))) / clients
            for i, g in enumerate(global_weights)
        ]
        return self._release(round, global_weights, updates[0], mean, clients=clients)


def _noised_global(global_weights: Sequence[np.ndarray], mean_delta: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [
        np.asarray(np.asarray(g, dtype=np.float64) + d, dtype=np.asarray(g).dtype)
        for g, d in zip(global_weights, mean_delta, strict=True)
    ]
