"""RdpAccountant against values computed with Google's dp-accounting 0.6.0.

Reference: ``dp_accounting.rdp.RdpAccountant().compose(PoissonSampledDpEvent(q, GaussianDpEvent(z)), steps)
.get_epsilon(delta)`` (``GaussianDpEvent(z)`` alone for q = 1), run once with dp-accounting 0.6.0.
"""

from __future__ import annotations

import pytest

from jointly.dp.accountant import RdpAccountant
from jointly.errors import ConfigError

# (q, z, steps, delta) -> epsilon from dp-accounting 0.6.0
REFERENCE = [
    (0.01, 1.1, 10000, 1e-5, 5.632010670081592),  # Abadi et al. setting (Opacus' older conversion says ~8)
    (0.01, 1.1, 1, 1e-5, 0.7751031255879707),
    (0.004, 1.0, 5000, 1e-5, 1.6990717962997222),
    (0.1, 0.8, 100, 1e-5, 12.40862557162675),  # some fractional orders do not converge there
    (1.0, 1.0, 1, 1e-5, 4.728507067217623),
    (1.0, 5.0, 50, 1e-6, 7.766237903487095),
    (0.05, 2.0, 300, 1e-6, 2.38708717416736),
    (0.2, 1.3, 37, 1e-5, 6.319756899133317),
]


@pytest.mark.parametrize(("q", "z", "steps", "delta", "expected"), REFERENCE)
def test_epsilon_matches_dp_accounting(q: float, z: float, steps: int, delta: float, expected: float) -> None:
    acc = RdpAccountant(z, q, delta)
    acc.step(steps)
    assert acc.epsilon() == pytest.approx(expected, rel=1e-9)


def test_epsilon_after_is_what_if_and_additive() -> None:
    acc = RdpAccountant(1.1, 0.01, 1e-5)
    assert acc.epsilon() == 0.0
    what_if = acc.epsilon_after(10000)
    assert acc.steps == 0
    acc.step(4000)
    acc.step(6000)
    assert acc.epsilon() == pytest.approx(what_if, rel=1e-12)
    assert acc.epsilon_after(1) > acc.epsilon()


def test_epsilon_grows_with_steps_and_shrinks_with_noise() -> None:
    a = RdpAccountant(1.0, 0.05, 1e-5)
    b = RdpAccountant(2.0, 0.05, 1e-5)
    assert a.epsilon_after(10) < a.epsilon_after(100)
    assert b.epsilon_after(100) < a.epsilon_after(100)


def test_state_dict_round_trip_and_mismatch() -> None:
    acc = RdpAccountant(1.1, 0.01, 1e-5)
    acc.step(123)
    fresh = RdpAccountant(1.1, 0.01, 1e-5)
    fresh.load_state_dict(acc.state_dict())
    assert fresh.steps == 123
    assert fresh.epsilon() == acc.epsilon()
    other = RdpAccountant(1.2, 0.01, 1e-5)
    with pytest.raises(ConfigError, match="accountant state is for"):
        other.load_state_dict(acc.state_dict())
    with pytest.raises(ConfigError, match="malformed"):
        fresh.load_state_dict({"steps": 3})


@pytest.mark.parametrize(
    ("z", "q", "delta"), [(0.0, 0.1, 1e-5), (1.0, 0.0, 1e-5), (1.0, 1.5, 1e-5), (1.0, 0.1, 0.0), (1.0, 0.1, 1.0)]
)
def test_bad_parameters_are_refused(z: float, q: float, delta: float) -> None:
    with pytest.raises(ConfigError):
        RdpAccountant(z, q, delta)


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_bad_step_counts_are_refused(n: object) -> None:
    acc = RdpAccountant(1.0, 0.1, 1e-5)
    with pytest.raises(ConfigError):
        acc.step(n)  # type: ignore[arg-type]
    assert acc.steps == 0
