"""Aggregation strategies against hand-computed results on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jointly.channel.codec import decode, encode
from jointly.errors import ConfigError, ProtocolViolation
from jointly.learn.horizontal.strategies import (
    ClientUpdate,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Krum,
    Median,
    MultiKrum,
    Sampling,
    Strategy,
    TooFewClients,
    TrimmedMean,
)


def _u(client: str, *arrays: list[float], n: int = 1, dtype: type = np.float32) -> ClientUpdate:
    return ClientUpdate(client, [np.array(a, dtype=dtype) for a in arrays], n)


def _1d(values: list[float]) -> list[ClientUpdate]:
    """One client per value, each with a single one-element tensor."""
    return [_u(f"c{i}", [v]) for i, v in enumerate(values)]


G1 = [np.zeros(1, np.float32)]


# ---------------------------------------------------------------- FedAvg / FedProx


def test_fedavg_is_example_weighted_mean_in_global_dtype() -> None:
    g = [np.zeros(2, np.float32), np.zeros((1, 1), np.float32)]
    ups = [_u("a", [1, 2], [[3]], n=1), _u("b", [4, 5], [[6]], n=3)]
    out = FedAvg().aggregate(1, g, ups)
    np.testing.assert_allclose(out[0], [3.25, 4.25])  # (1 + 3*4)/4, (2 + 3*5)/4
    np.testing.assert_allclose(out[1], [[5.25]])  # (3 + 3*6)/4
    assert [a.dtype for a in out] == [np.float32, np.float32]
    assert [a.shape for a in out] == [(2,), (1, 1)]


def test_fedavg_accepts_pre_aggregated_update_with_the_same_result() -> None:
    ups = [_u("a", [1.0], n=1), _u("b", [4.0], n=3), _u("c", [10.0], n=4)]
    direct = FedAvg(sampling=Sampling(min_clients=3)).aggregate(1, G1, ups)
    # what a secure-aggregation wrapper would hand over: the weighted mean of a and b, standing for 2 clients
    pre = ClientUpdate("secagg", [np.array([13 / 4], np.float32)], 4, num_clients=2)
    wrapped = FedAvg(sampling=Sampling(min_clients=3)).aggregate(1, G1, [pre, ups[2]])
    np.testing.assert_allclose(direct[0], [(1 + 12 + 40) / 8])
    np.testing.assert_allclose(wrapped[0], direct[0], rtol=1e-6)


def test_fedprox_aggregates_like_fedavg_and_sends_mu() -> None:
    ups = [_u("a", [1.0], n=2), _u("b", [7.0], n=1)]
    prox = FedProx(proximal_mu=0.01, local_epochs=3)
    np.testing.assert_allclose(prox.aggregate(1, G1, ups)[0], [3.0])
    assert prox.client_config(4) == {"round": 4, "local_epochs": 3, "proximal_mu": 0.01}
    with pytest.raises(ConfigError, match="proximal_mu"):
        FedProx(proximal_mu=-1.0)


def test_linearity_flags() -> None:
    assert FedAvg.is_linear and FedProx.is_linear and FedAdam.is_linear and FedYogi.is_linear
    assert FedAdagrad.is_linear
    assert not Median.is_linear and not TrimmedMean.is_linear and not Krum.is_linear and not MultiKrum.is_linear


# ---------------------------------------------------------------- FedOpt


def _adam_scalar(x: float, w: float, m: float, v: float, eta: float, b1: float, b2: float, tau: float):
    d = w - x
    m = b1 * m + (1 - b1) * d
    v = b2 * v + (1 - b2) * d * d
    return x + eta * m / (math.sqrt(v) + tau), m, v


def _yogi_scalar(x: float, w: float, m: float, v: float, eta: float, b1: float, b2: float, tau: float):
    d = w - x
    m = b1 * m + (1 - b1) * d
    v = v - (1 - b2) * d * d * (1.0 if v > d * d else -1.0)
    return x + eta * m / (math.sqrt(v) + tau), m, v


@pytest.mark.parametrize(("cls", "scalar"), [(FedAdam, _adam_scalar), (FedYogi, _yogi_scalar)])
def test_fedadam_fedyogi_two_steps_match_hand_computation(cls: type, scalar) -> None:
    eta, b1, b2, tau = 0.5, 0.9, 0.99, 0.5
    s = cls(eta=eta, eta_l=0.05, beta1=b1, beta2=b2, tau=tau)
    x0 = [1.0, 2.0]
    g = [np.array(x0)]
    # round 1: clients' weighted mean is [2, 1] -> delta [1, -1], delta^2 = 1 > v0 = tau^2 = 0.25
    ups1 = [_u("a", [1.0, 1.0], n=1, dtype=np.float64), _u("b", [3.0, 1.0], n=1, dtype=np.float64)]
    x1 = s.aggregate(1, g, ups1)
    want1 = [scalar(x0[j], [2.0, 1.0][j], 0.0, tau**2, eta, b1, b2, tau) for j in range(2)]
    np.testing.assert_allclose(x1[0], [w[0] for w in want1], rtol=1e-12)
    # round 2: delta [0.1, -0.05]: delta^2 < v, the other branch of Yogi's sign
    target = [want1[0][0] + 0.1, want1[1][0] - 0.05]
    x2 = s.aggregate(2, x1, [_u("a", target, n=5, dtype=np.float64)])
    want2 = [scalar(want1[j][0], target[j], want1[j][1], want1[j][2], eta, b1, b2, tau) for j in range(2)]
    np.testing.assert_allclose(x2[0], [w[0] for w in want2], rtol=1e-12)
    assert s.step == 2
    np.testing.assert_allclose(s.v[0], [w[2] for w in want2], rtol=1e-12)
    assert s.client_config(2)["learning_rate"] == 0.05


def test_fedyogi_second_moment_hand_values() -> None:
    # v0 = 0.25; delta^2 = 1 > v0 -> v1 = 0.25 + 0.01 = 0.26; then delta^2 = 0.01 < 0.26 -> v2 = 0.26 - 0.0001
    s = FedYogi(eta=1.0, eta_l=0.1, beta1=0.0, beta2=0.99, tau=0.5)
    x1 = s.aggregate(1, [np.array([0.0])], [_u("a", [1.0], dtype=np.float64)])
    np.testing.assert_allclose(s.v[0], [0.26])
    np.testing.assert_allclose(x1[0], [1.0 / (math.sqrt(0.26) + 0.5)])
    s.aggregate(2, x1, [_u("a", [x1[0][0] + 0.1], dtype=np.float64)])
    np.testing.assert_allclose(s.v[0], [0.2599])


def test_fedadagrad_one_step() -> None:
    s = FedAdagrad(eta=0.1, tau=0.1)
    out = s.aggregate(1, [np.array([0.0, 0.0])], [_u("a", [2.0, -1.0], dtype=np.float64)])
    # m = delta (beta1 = 0), v = tau^2 + delta^2
    np.testing.assert_allclose(out[0], [0.1 * 2 / (math.sqrt(0.01 + 4) + 0.1), 0.1 * -1 / (math.sqrt(0.01 + 1) + 0.1)])


def test_fedopt_state_dict_round_trip_through_codec() -> None:
    g = [np.zeros(3, np.float32), np.ones((2, 2), np.float32)]
    rng = np.random.default_rng(0)

    def ups() -> list[ClientUpdate]:
        return [ClientUpdate(c, [(a + rng.normal(size=a.shape)).astype(np.float32) for a in g], 3) for c in ("a", "b")]

    first = FedAdam()
    assert first.state_dict() == {"step": 0, "m": [], "v": []}
    g1 = first.aggregate(1, g, ups())
    restored = FedAdam()
    restored.load_state_dict(decode(encode(first.state_dict())))
    assert restored.step == 1
    round2 = ups()
    np.testing.assert_array_equal(first.aggregate(2, g1, round2)[1], restored.aggregate(2, g1, round2)[1])
    with pytest.raises(ConfigError, match="keys"):
        restored.load_state_dict({"step": 1})
    with pytest.raises(ConfigError, match="stateless"):
        FedAvg().load_state_dict({"step": 1})
    bad = FedAdam()
    bad.load_state_dict({"step": 1, "m": [np.zeros(5)], "v": [np.ones(5)]})
    with pytest.raises(ConfigError, match="shapes"):
        bad.aggregate(2, g, ups())


# ---------------------------------------------------------------- robust


def test_median_and_trimmed_mean_hand_values() -> None:
    np.testing.assert_allclose(Median().aggregate(1, G1, _1d([1, 5, 3]))[0], [3.0])
    np.testing.assert_allclose(Median().aggregate(1, G1, _1d([1, 2, 3, 10]))[0], [2.5])
    np.testing.assert_allclose(TrimmedMean(beta=0.25).aggregate(1, G1, _1d([1, 2, 3, 10]))[0], [2.5])
    np.testing.assert_allclose(TrimmedMean(beta=0.2).aggregate(1, G1, _1d([100, 2, 1, 4, 3]))[0], [3.0])
    np.testing.assert_allclose(TrimmedMean(beta=0.0).aggregate(1, G1, _1d([1, 2, 6]))[0], [3.0])
    # per coordinate, not per client
    g = [np.zeros(2, np.float32)]
    ups = [_u("a", [1, 9]), _u("b", [5, 1]), _u("c", [3, 4])]
    np.testing.assert_allclose(Median().aggregate(1, g, ups)[0], [3, 4])


def test_robust_aggregates_ignore_example_counts() -> None:
    ups = [_u("a", [1.0], n=1), _u("b", [2.0], n=1), _u("c", [3.0], n=10_000)]
    np.testing.assert_allclose(Median().aggregate(1, G1, ups)[0], [2.0])
    np.testing.assert_allclose(TrimmedMean(beta=0.0).aggregate(1, G1, ups)[0], [2.0])
    pre = ClientUpdate("secagg", [np.ones(1, np.float32)], 4, num_clients=2)
    with pytest.raises(ProtocolViolation, match="individual updates"):
        Median().aggregate(1, G1, [pre, *ups])


def test_krum_and_multikrum_hand_values() -> None:
    # scores with f=0 (k = n - 2 = 2 nearest): 0 -> 1+9=10, 1 -> 1+4=5, 3 -> 4+9=13, 10 -> 49+81=130
    ups = _1d([0, 1, 3, 10])
    krum = Krum(f=0)
    np.testing.assert_allclose(krum.scores(ups), [10, 5, 13, 130])
    np.testing.assert_allclose(krum.aggregate(1, G1, ups)[0], [1.0])
    assert krum.last_selected == ["c1"]
    multi = MultiKrum(f=0, m=2)
    np.testing.assert_allclose(multi.aggregate(1, G1, ups)[0], [0.5])
    assert multi.last_selected == ["c0", "c1"]


def test_krum_picks_honest_cluster_against_scaled_byzantine_update() -> None:
    rng = np.random.default_rng(3)
    g = [np.zeros((2, 3), np.float32), np.zeros(4, np.float32)]
    honest = [
        ClientUpdate(f"h{i}", [(1 + 0.01 * rng.normal(size=a.shape)).astype(np.float32) for a in g], 10)
        for i in range(5)
    ]
    byz = ClientUpdate("evil", [-100 * h for h in honest[0].weights], 10)
    ups = [honest[0], honest[1], byz, *honest[2:]]
    krum = Krum(f=1)
    out = krum.aggregate(1, g, ups)
    assert krum.last_selected[0].startswith("h")
    assert all(np.allclose(a, 1, atol=0.05) for a in out)
    multi = MultiKrum(f=1, m=3)
    out = multi.aggregate(1, g, ups)
    assert "evil" not in multi.last_selected and len(multi.last_selected) == 3
    assert all(np.allclose(a, 1, atol=0.05) for a in out)
    assert np.abs(FedAvg().aggregate(1, g, ups)[0] - 1).max() > 10  # FedAvg is dragged away


def test_krum_needs_2f_plus_3_updates() -> None:
    with pytest.raises(TooFewClients, match="at least 5"):
        Krum(f=1).aggregate(1, G1, _1d([1, 2, 3, 4]))
    with pytest.raises(ConfigError):
        Krum(f=-1)


def test_median_and_trimmed_mean_resist_one_huge_update_fedavg_does_not() -> None:
    g = [np.zeros(3, np.float32)]
    honest = [_u(f"h{i}", [1.0 + 0.1 * i, 1.0, 1.0 - 0.1 * i], n=5) for i in range(4)]
    ups = [*honest, _u("evil", [1e6, -1e6, 1e6], n=5)]
    for strategy in (Median(), TrimmedMean(beta=0.2)):
        out = strategy.aggregate(1, g, ups)[0]
        assert np.abs(out - 1).max() < 0.35, type(strategy).__name__
    assert np.abs(FedAvg().aggregate(1, g, ups)[0] - 1).min() > 1e5


# ---------------------------------------------------------------- sampling and checks


def test_sampling_is_seeded_and_respects_fraction_and_min_clients() -> None:
    clients = [f"c{i}" for i in range(10)]
    s = FedAvg(sampling=Sampling(fraction=0.3, min_clients=2))
    a = s.configure_round(1, clients, np.random.default_rng(42))
    b = s.configure_round(1, clients, np.random.default_rng(42))
    assert a == b and len(a) == 3 and len(set(a)) == 3 and set(a) <= set(clients)
    assert a == sorted(a, key=clients.index)
    samples = {tuple(s.configure_round(1, clients, np.random.default_rng(seed))) for seed in range(20)}
    assert len(samples) > 1
    few = FedAvg(sampling=Sampling(fraction=0.1, min_clients=4))
    assert len(few.configure_round(1, clients, np.random.default_rng(0))) == 4
    assert FedAvg().configure_round(1, clients, np.random.default_rng(0)) == clients
    with pytest.raises(TooFewClients, match="2 clients are available, the strategy needs at least 4"):
        few.configure_round(1, clients[:2], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="duplicate"):
        s.configure_round(1, ["a", "a", "b"], np.random.default_rng(0))
    with pytest.raises(ConfigError):
        Sampling(fraction=0.0)
    with pytest.raises(ConfigError):
        Sampling(min_clients=0)


@pytest.mark.parametrize(
    "strategy", [FedAvg(sampling=Sampling(min_clients=3)), Median(sampling=Sampling(min_clients=3))]
)
def test_too_few_updates_is_a_clear_error(strategy: Strategy) -> None:
    with pytest.raises(TooFewClients, match="round 7: 2 client updates arrived, the strategy needs at least 3"):
        strategy.aggregate(7, G1, _1d([1, 2]))
    assert strategy.min_clients == 3


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (ClientUpdate("mallory", [np.zeros(2, np.float32)], 1), r"'mallory' sent array 0 of shape \(2,\)"),
        (ClientUpdate("mallory", [np.zeros(1, np.float32)] * 2, 1), "'mallory' sent 2 arrays"),
        (ClientUpdate("mallory", [np.zeros(1, np.int64)], 1), "'mallory' sent array 0 of dtype int64"),
        (ClientUpdate("mallory", [np.array([np.nan], np.float32)], 1), "'mallory' sent array 0 with NaN"),
        (ClientUpdate("mallory", [np.zeros(1, np.float32)], 0), "'mallory' reported num_examples=0"),
        (ClientUpdate("mallory", [[0.0]], 1), "'mallory' sent array 0 as list"),  # type: ignore[list-item]
        (ClientUpdate("c0", [np.zeros(1, np.float32)], 1), "'c0' sent more than one update"),
    ],
)
@pytest.mark.parametrize("cls", [FedAvg, FedAdam, Median, TrimmedMean])
def test_malformed_update_is_a_protocol_violation_naming_the_client(cls: type, bad: ClientUpdate, match: str) -> None:
    with pytest.raises(ProtocolViolation, match=match):
        cls().aggregate(1, G1, [*_1d([1, 2]), bad])


def test_fedopt_state_untouched_by_a_rejected_round() -> None:
    s = FedAdam()
    with pytest.raises(ProtocolViolation):
        s.aggregate(1, G1, [ClientUpdate("x", [np.zeros(2, np.float32)], 1)])
    assert s.state_dict() == {"step": 0, "m": [], "v": []}


@pytest.mark.parametrize("strategy", [FedAvg(), FedProx(proximal_mu=0.1), FedAdam(), FedYogi()])
def test_linear_strategies_run_under_the_dp_wrapper(strategy: Strategy) -> None:
    from jointly.dp.accountant import RdpAccountant
    from jointly.dp.budget import PrivacyBudget
    from jointly.learn.horizontal.dp import DpServerFixedClipping

    wrapper = DpServerFixedClipping(
        strategy,
        noise_multiplier=1.0,
        clip_norm=1.0,
        budget=PrivacyBudget(50.0, 1e-5),
        accountant=RdpAccountant(1.0, 0.5, 1e-5),
        rng=np.random.default_rng(0),
    )
    g = [np.zeros(3, np.float32)]
    out = wrapper.aggregate(1, g, [_u(f"c{i}", [i, i, i], n=5) for i in range(3)])
    assert out[0].dtype == np.float32 and out[0].shape == (3,)
    assert not np.allclose(out[0], 0.0)
    assert wrapper.client_config(1)["round"] == 1  # everything else is delegated to the strategy
