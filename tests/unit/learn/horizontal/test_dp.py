"""DP wrappers, run against a tiny local mean strategy (the real strategies are typed the same way)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget
from jointly.dp.mechanisms import clip_by_global_norm
from jointly.errors import BudgetExhausted, ConfigError, ProtocolViolation
from jointly.learn.horizontal.dp import (
    DpClientFixedClipping,
    DpServerAdaptiveClipping,
    DpServerClientSideNoise,
    DpServerFixedClipping,
)


@dataclass(frozen=True)
class Update:
    client: str
    weights: list[np.ndarray]
    num_examples: int
    metrics: dict[str, float] = field(default_factory=dict)


class WeightedMean:
    """FedAvg-style example-weighted mean; records what it was given."""

    def __init__(self) -> None:
        self.calls: list[Sequence[Update]] = []
        self.name = "weighted-mean"

    def aggregate(self, round: int, global_weights: list[np.ndarray], updates: Sequence[Update]) -> list[np.ndarray]:
        self.calls.append(updates)
        total = sum(u.num_examples for u in updates)
        return [
            sum((u.weights[i] * (u.num_examples / total) for u in updates), np.zeros_like(g))
            for i, g in enumerate(global_weights)
        ]


def _updates(global_weights: list[np.ndarray], deltas: list[list[np.ndarray]], sizes: list[int]) -> list[Update]:
    return [
        Update(f"c{i}", [g + d for g, d in zip(global_weights, delta, strict=True)], n)
        for i, (delta, n) in enumerate(zip(deltas, sizes, strict=True))
    ]


GLOBAL = [np.zeros((2, 2)), np.ones(3)]
DELTAS = [
    [np.full((2, 2), 10.0), np.full(3, 10.0)],  # norm ~26: clipped
    [np.full((2, 2), 0.1), np.zeros(3)],  # norm 0.2: kept
    [np.zeros((2, 2)), np.full(3, -3.0)],  # norm ~5.2: clipped
]


def _wrapper(budget_eps: float = 50.0, seed: int = 7) -> tuple[DpServerFixedClipping[Update], WeightedMean]:
    strategy = WeightedMean()
    acc = RdpAccountant(1.0, 0.5, 1e-5)
    wrapper = DpServerFixedClipping(
        strategy,
        noise_multiplier=1.0,
        clip_norm=1.0,
        budget=PrivacyBudget(budget_eps, 1e-5),
        accountant=acc,
        rng=np.random.default_rng(seed),
    )
    return wrapper, strategy


def test_fixed_clipping_is_unweighted_mean_of_clipped_deltas_plus_noise() -> None:
    wrapper, strategy = _wrapper()
    out = wrapper.aggregate(1, GLOBAL, _updates(GLOBAL, DELTAS, [1000, 1, 5]))
    clipped = [clip_by_global_norm(d, 1.0)[0] for d in DELTAS]
    mean = [sum(c[i] for c in clipped) / 3 for i in range(2)]
    rng = np.random.default_rng(7)
    noise = [rng.normal(0.0, 1.0 * 1.0 / 3, size=np.shape(g)) for g in GLOBAL]
    for o, g, m, n in zip(out, GLOBAL, mean, noise, strict=True):
        np.testing.assert_allclose(o, g + m + n)
    (only,) = strategy.calls
    assert len(only) == 1 and only[0].num_examples == 1 and only[0].client == "dp-aggregate"
    assert wrapper.accountant.steps == 1 and wrapper.budget.spent > 0


def test_fixed_clipping_refuses_round_beyond_budget() -> None:
    acc = RdpAccountant(1.0, 0.5, 1e-5)
    wrapper, strategy = _wrapper(budget_eps=acc.epsilon_after(2) + 1e-6)
    updates = _updates(GLOBAL, DELTAS, [1, 1, 1])
    wrapper.aggregate(1, GLOBAL, updates)
    wrapper.aggregate(2, GLOBAL, updates)
    spent = wrapper.budget.spent
    assert wrapper.would_exceed_budget()
    with pytest.raises(BudgetExhausted, match="limit epsilon"):
        wrapper.begin_round(3)
    with pytest.raises(BudgetExhausted):
        wrapper.aggregate(3, GLOBAL, updates)
    assert len(strategy.calls) == 2  # nothing released for round 3
    assert wrapper.budget.spent == spent and wrapper.accountant.steps == 2


def test_begin_round_pays_once() -> None:
    wrapper, _ = _wrapper()
    wrapper.begin_round(1)
    wrapper.begin_round(1)
    wrapper.aggregate(1, GLOBAL, _updates(GLOBAL, DELTAS, [1, 1, 1]))
    assert wrapper.accountant.steps == 1
    wrapper.aggregate(2, GLOBAL, _updates(GLOBAL, DELTAS, [1, 1, 1]))
    assert wrapper.accountant.steps == 2


def test_malformed_update_is_refused_before_paying() -> None:
    wrapper, _ = _wrapper()
    bad = [Update("evil", [np.zeros((3, 3)), np.ones(3)], 1)]
    with pytest.raises(ProtocolViolation, match="evil"):
        wrapper.aggregate(1, GLOBAL, bad)
    assert wrapper.accountant.steps == 0 and wrapper.budget.spent == 0.0


def test_wrapper_delegates_other_attributes() -> None:
    wrapper, _ = _wrapper()
    assert wrapper.name == "weighted-mean"


def test_adaptive_clipping_shrinks_clip_norm_when_updates_are_small() -> None:
    acc = RdpAccountant(1.0, 0.5, 1e-5)
    wrapper = DpServerAdaptiveClipping(
        WeightedMean(),
        noise_multiplier=1.0,
        initial_clip_norm=10.0,
        budget=PrivacyBudget(100.0, 1e-5),
        accountant=acc,
        expected_clients=20,
        rng=np.random.default_rng(3),
    )
    assert wrapper.update_noise_multiplier > 1.0
    small = _updates(GLOBAL, [[np.full((2, 2), 0.01), np.zeros(3)]] * 20, [1] * 20)
    norms = []
    for r in range(1, 21):
        wrapper.aggregate(r, GLOBAL, small)
        norms.append(wrapper.clip_norm)
    assert norms[-1] < 10.0 * np.exp(-0.2 * 0.5 * 20) * 1.5
    assert acc.steps == 20
    state = wrapper.state_dict()
    wrapper.load_state_dict({"clip_norm": 1.0})
    assert wrapper.clip_norm == 1.0
    wrapper.load_state_dict(state)
    assert wrapper.clip_norm == norms[-1]


def test_client_side_noise_share_and_server_mean() -> None:
    m = 4
    big = [np.zeros(20_000), np.zeros((100, 100))]
    client = DpClientFixedClipping(
        noise_multiplier=2.0, clip_norm=1.0, expected_clients=m, rng=np.random.default_rng(5)
    )
    local = [np.full(20_000, 5.0), np.zeros((100, 100))]
    sent = client(big, local)
    noise_std = np.std(
        np.concatenate([s.ravel() for s in sent])
        - np.concatenate([c.ravel() for c in clip_by_global_norm(local, 1.0)[0]])
    )
    assert client.noise_std == pytest.approx(1.0)
    assert noise_std == pytest.approx(1.0, rel=0.02)

    strategy = WeightedMean()
    acc = RdpAccountant(2.0, 0.5, 1e-5)
    server = DpServerClientSideNoise(strategy, budget=PrivacyBudget(10.0, 1e-5), accountant=acc, expected_clients=m)
    updates = [
        Update(f"c{i}", client(GLOBAL, [g + d for g, d in zip(GLOBAL, DELTAS[i % 3], strict=True)]), 10 * i + 1)
        for i in range(m)
    ]
    out = server.aggregate(1, GLOBAL, updates)
    expected = [sum(u.weights[i] for u in updates) / m for i in range(2)]
    for o, e in zip(out, expected, strict=True):
        np.testing.assert_allclose(o, e)
    assert acc.steps == 1
    with pytest.raises(ProtocolViolation, match="3 of 4"):
        server.aggregate(2, GLOBAL, updates[:3])
    assert acc.steps == 1


def test_non_dataclass_updates_are_refused_with_a_clear_error() -> None:
    class PlainUpdate:
        def __init__(self, weights: list[np.ndarray]) -> None:
            self.client = "plain"
            self.weights = weights
            self.num_examples = 1

    wrapper, _ = _wrapper()
    with pytest.raises(ConfigError, match="dataclasses"):
        wrapper.aggregate(1, GLOBAL, [PlainUpdate([g.copy() for g in GLOBAL])])  # type: ignore[list-item]
