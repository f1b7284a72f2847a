from __future__ import annotations

import pytest

from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget
from jointly.errors import BudgetExhausted, ConfigError


def test_spends_until_the_step_that_would_overspend() -> None:
    acc = RdpAccountant(2.0, 0.1, 1e-5)
    budget = PrivacyBudget(2.0, 1e-5)
    steps = 0
    with pytest.raises(BudgetExhausted) as info:
        while True:
            budget.check_and_spend(acc)
            steps += 1
    assert steps > 0
    assert acc.steps == steps
    assert budget.spent == pytest.approx(acc.epsilon())
    assert budget.spent <= 2.0
    assert acc.epsilon_after(1) > 2.0
    message = str(info.value)
    assert "spent epsilon=" in message and "limit epsilon=2" in message and "requested" in message


def test_refused_step_changes_nothing() -> None:
    acc = RdpAccountant(2.0, 0.1, 1e-5)
    budget = PrivacyBudget(1.0, 1e-5)
    budget.check_and_spend(acc, 2)
    spent, remaining, steps = budget.spent, budget.remaining, acc.steps
    with pytest.raises(BudgetExhausted):
        budget.check_and_spend(acc, 10_000)
    assert (budget.spent, budget.remaining, acc.steps) == (spent, remaining, steps)
    assert budget.remaining == pytest.approx(1.0 - spent)


def test_would_exceed_spends_nothing() -> None:
    acc = RdpAccountant(2.0, 0.1, 1e-5)
    budget = PrivacyBudget(1.0, 1e-5)
    assert budget.would_exceed(acc, 10_000)
    assert not budget.would_exceed(acc, 1)
    assert budget.spent == 0.0 and acc.steps == 0


def test_refuses_accountant_with_larger_delta_or_another_accountant() -> None:
    budget = PrivacyBudget(5.0, 1e-5)
    with pytest.raises(ConfigError, match="delta"):
        budget.check_and_spend(RdpAccountant(1.0, 0.1, 1e-4))
    budget.check_and_spend(RdpAccountant(2.0, 0.1, 1e-5))
    with pytest.raises(ConfigError, match="another accountant"):
        budget.check_and_spend(RdpAccountant(3.0, 0.1, 1e-5))


def test_detects_steps_recorded_behind_its_back() -> None:
    acc = RdpAccountant(2.0, 0.1, 1e-5)
    budget = PrivacyBudget(5.0, 1e-5)
    budget.check_and_spend(acc)
    acc.step(5)
    with pytest.raises(ConfigError, match="outside the budget"):
        budget.check_and_spend(acc)


def test_state_round_trip_resumes_spending() -> None:
    acc = RdpAccountant(2.0, 0.1, 1e-5)
    budget = PrivacyBudget(3.0, 1e-5)
    budget.check_and_spend(acc, 3)
    acc2 = RdpAccountant(2.0, 0.1, 1e-5)
    acc2.load_state_dict(acc.state_dict())
    budget2 = PrivacyBudget(3.0, 1e-5)
    budget2.load_state_dict(budget.state_dict())
    assert budget2.spent == budget.spent
    budget2.check_and_spend(acc2)
    assert acc2.steps == 4
    with pytest.raises(ConfigError, match="budget state is for"):
        PrivacyBudget(4.0, 1e-5).load_state_dict(budget.state_dict())


@pytest.mark.parametrize(("eps", "delta"), [(0.0, 1e-5), (float("inf"), 1e-5), (1.0, 0.0), (1.0, 1.0)])
def test_bad_limits_are_refused(eps: float, delta: float) -> None:
    with pytest.raises(ConfigError):
        PrivacyBudget(eps, delta)
