"""The horizontal job spec: what is accepted, what is refused with which message, and the derived pieces."""

from __future__ import annotations

from typing import Any

import pytest

from jointly.config.job import JobSpec
from jointly.errors import ConfigError
from jointly.learn.horizontal.strategies import FedAdam, FedProx, Krum
from jointly.runtime.horizontal import build_strategy, check_horizontal, min_clients, sampled_per_round
from jointly.runtime.usage import job_usage

CNN = {"family": "cnn", "num_classes": 10, "in_channels": 1, "image_size": 8}


def spec(horizontal: dict[str, Any] | None = None, parties: dict[str, Any] | None = None) -> JobSpec:
    section = {"aggregator": "hub", "model": CNN, **(horizontal or {})}
    return JobSpec.from_dict(
        {
            "name": "fl",
            "kind": "horizontal",
            "parties": parties or {"hub": {}, "a": {"data": "a.npz"}, "b": {"data": "b.npz"}, "c": {"data": "c.npz"}},
            "horizontal": section,
        }
    )


def test_a_valid_spec_round_trips_and_names_the_clients() -> None:
    s = spec({"strategy": {"name": "fedprox", "mu": 0.1}, "secure_aggregation": {"enabled": True}})
    assert s.clients == ("a", "b", "c") and s.horizontal is not None and s.horizontal.secagg
    assert JobSpec.from_dict(s.to_dict()) == s
    check_horizontal(s)
    strategy = build_strategy(s.horizontal, 3)
    assert isinstance(strategy, FedProx) and strategy.proximal_mu == 0.1
    assert min_clients(s.horizontal, 3) == 2 and sampled_per_round(s.horizontal, 3) == 3


@pytest.mark.parametrize(
    "horizontal,parties,needle",
    [
        ({"aggregator": "zed"}, None, "not a party"),
        ({}, {"hub": {"data": "x.csv"}, "a": {"data": "a"}, "b": {"data": "b"}}, "holds no data"),
        ({}, {"hub": {}, "a": {"data": "a"}}, "at least two clients"),
        ({}, {"hub": {}, "a": {"data": "a"}, "b": {}}, "need 'data'"),
        ({"min_clients": 9}, None, "min_clients"),
        ({"secure_aggregation": {"threshold": 5}}, None, "threshold"),
        ({"secure_aggregation": {}, "dp": {"noise_multiplier": 1, "epsilon": 5}}, None, "central DP"),
        ({"dp": {"mode": "client", "noise_multiplier": 1, "epsilon": 5, "adaptive": True}}, None, "adaptive"),
        ({"rounds": 0}, None, "rounds"),
        ({"teleport": 1}, None, "teleport"),
    ],
)
def test_invalid_specs_are_refused_with_the_reason(
    horizontal: dict[str, Any], parties: dict[str, Any] | None, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        spec(horizontal, parties)


@pytest.mark.parametrize(
    "horizontal,needle",
    [
        ({"model": {"family": "transformerxl"}}, "unknown family"),
        ({"model": {"family": "mlp", "num_classes": 2}}, "in_features"),
        ({"model": {**CNN, "colour": True}}, "unknown keys"),
        ({"strategy": "fedmagic"}, "unknown strategy"),
        ({"strategy": {"name": "krum", "typo": 1}}, "bad parameters"),
        ({"strategy": {"name": "median"}, "secure_aggregation": {}}, "individual updates"),
        ({"strategy": {"name": "krum", "f": 1}, "dp": {"noise_multiplier": 1, "epsilon": 5}}, "cannot be wrapped"),
        (
            {
                "dp": {"noise_multiplier": 1, "epsilon": 5, "mode": "client"},
                "model": {**CNN, "options": {"norm": "batch"}},
            },
            "norm: group",
        ),
        ({"dp_sgd": {"noise_multiplier": 1.0}}, "BatchNorm"),
        ({"dp": {"noise_multiplier": 1.0, "epsilon": 5}}, "norm: group"),
    ],
)
def test_what_only_the_runtime_can_check_is_refused_before_the_job_runs(
    horizontal: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        check_horizontal(spec(horizontal))


def test_strategy_parameters_and_sampling_come_from_the_spec() -> None:
    s = spec({"strategy": {"name": "fedadam", "server_lr": 0.01}, "fraction": 0.5, "min_clients": 1, "lr": 0.2})
    assert s.horizontal is not None
    adam = build_strategy(s.horizontal, 3)
    assert isinstance(adam, FedAdam) and adam.eta == 0.01 and adam.eta_l == 0.2
    assert sampled_per_round(s.horizontal, 4) == 2
    krum = build_strategy(spec({"strategy": {"name": "krum", "f": 1}}).horizontal or s.horizontal, 3)
    assert isinstance(krum, Krum)


def test_usage_tells_each_party_what_it_shares() -> None:
    plain = spec()
    secure = spec({"secure_aggregation": {}, "dp": {"mode": "client", "noise_multiplier": 1.0, "epsilon": 4.0}})
    assert job_usage(plain, "hub")["role"] == "aggregator" and job_usage(plain, "a")["role"] == "client"
    assert any("model update" in x for x in job_usage(plain, "a")["partners_learn"])
    learn = job_usage(secure, "a")["partners_learn"]
    assert any("only the sum" in x for x in learn) and not any("model update" in x for x in learn)
    privacy = job_usage(secure, "a")["privacy"]
    assert "secure aggregation" in privacy["protocol"] and privacy["dp_budget"]["epsilon"] == 4.0
    assert job_usage(plain, "a")["datasets"][0]["columns"][0] == "train_images"
