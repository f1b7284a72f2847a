"""A privacy budget that refuses to overspend.

Like OpenDP's ``Context`` ("Privacy allowance has been exhausted"): the budget is
asked *before* a step runs.  :meth:`PrivacyBudget.check_and_spend` computes the
epsilon the accountant would reach after the requested steps, and only if that is
within the limit does it record the steps; otherwise it raises
:class:`~jointly.errors.BudgetExhausted` and nothing changes.  A party that owns
the data owns its budget; the budget's state is saved with the job's checkpoint.

One budget guards one accountant (one stream of DP releases about the same
records).  The first accountant that spends binds the budget to its parameters
(noise multiplier, sampling rate, delta); another accountant, or one that was
stepped behind the budget's back, is refused with a :class:`ConfigError`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from jointly.errors import BudgetExhausted, ConfigError

__all__ = ["Accountant", "PrivacyBudget"]

_TOL = 1e-9


class Accountant(Protocol):
    """What the budget needs from an accountant (see :class:`jointly.dp.accountant.RdpAccountant`)."""

    @property
    def noise_multiplier(self) -> float: ...
    @property
    def sampling_rate(self) -> float: ...
    @property
    def delta(self) -> float: ...
    def step(self, n: int = 1) -> None: ...
    def epsilon(self) -> float: ...
    def epsilon_after(self, steps: int) -> float: ...


class PrivacyBudget:
    """An ``(epsilon, delta)`` allowance; spending happens only through :meth:`check_and_spend`."""

    def __init__(self, epsilon: float, delta: float) -> None:
        if not math.isfinite(epsilon) or epsilon <= 0:
            raise ConfigError(f"budget epsilon must be a positive finite number, got {epsilon}")
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"budget delta must be in (0, 1), got {delta}")
        self._epsilon = float(epsilon)
        self._delta = float(delta)
        self._spent = 0.0
        self._bound: tuple[float, float, float] | None = None

    @property
    def epsilon(self) -> float:
        """The epsilon limit."""
        return self._epsilon

    @property
    def delta(self) -> float:
        """The delta limit (the accountant's delta must not exceed it)."""
        return self._delta

    @property
    def spent(self) -> float:
        """Epsilon spent so far."""
        return self._spent

    @property
    def remaining(self) -> float:
        """Epsilon still available (never negative)."""
        return max(0.0, self._epsilon - self._spent)

    def would_exceed(self, accountant: Accountant, steps: int = 1) -> bool:
        """True if ``steps`` more steps of ``accountant`` would overspend (nothing is spent)."""
        self._check_accountant(accountant)
        return accountant.epsilon_after(steps) > self._epsilon + _TOL

    def check_and_spend(self, accountant: Accountant, steps: int = 1) -> float:
        """Record ``steps`` on ``accountant`` if the resulting epsilon fits the budget; return the new total.

        Raises :class:`BudgetExhausted` (spent, requested, limit in the message) and changes nothing
        if it does not fit.
        """
        self._check_accountant(accountant)
        after = accountant.epsilon_after(steps)
        if after > self._epsilon + _TOL:
            raise BudgetExhausted(
                f"privacy budget exhausted: spent epsilon={self._spent:.6g}, {steps} more step(s) would bring it "
                f"to {after:.6g} (requested {after - self._spent:.6g}), limit epsilon={self._epsilon:.6g} "
                f"at delta={self._delta:.3g}"
            )
        accountant.step(steps)
        self._bound = _fingerprint(accountant)
        self._spent = after
        return after

    def _check_accountant(self, accountant: Accountant) -> None:
        if accountant.delta > self._delta:
            raise ConfigError(f"accountant delta {accountant.delta:.3g} exceeds the budget's delta {self._delta:.3g}")
        if self._bound is not None and _fingerprint(accountant) != self._bound:
            raise ConfigError(
                "this budget guards another accountant (noise multiplier, sampling rate, delta = "
                f"{self._bound}); use one accountant per budget"
            )
        current = accountant.epsilon()
        if abs(current - self._spent) > _TOL * max(1.0, current):
            raise ConfigError(
                f"accountant has spent epsilon={current:.6g} but the budget recorded {self._spent:.6g}: "
                "steps were recorded outside the budget, or the checkpoints do not match"
            )

    def state_dict(self) -> dict[str, Any]:
        """Plain, codec-safe state for checkpoints."""
        return {
            "epsilon": self._epsilon,
            "delta": self._delta,
            "spent": self._spent,
            "bound": list(self._bound) if self._bound is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore spending; refuses a state saved with a different limit."""
        try:
            eps, delta, spent = float(state["epsilon"]), float(state["delta"]), float(state["spent"])
            bound_raw = state["bound"]
            bound = None if bound_raw is None else tuple(float(v) for v in bound_raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed privacy budget state: {exc!r}") from exc
        if (eps, delta) != (self._epsilon, self._delta):
            raise ConfigError(
                f"budget state is for epsilon={eps}, delta={delta}; this budget is "
                f"epsilon={self._epsilon}, delta={self._delta}"
            )
        if not spent >= 0.0 or (bound is not None and len(bound) != 3):
            raise ConfigError("malformed privacy budget state: bad 'spent' or 'bound'")
        self._spent = spent
        self._bound = None if bound is None else (bound[0], bound[1], bound[2])

    def __repr__(self) -> str:
        return f"PrivacyBudget(epsilon={self._epsilon}, delta={self._delta}, spent={self._spent:.6g})"


def _fingerprint(accountant: Accountant) -> tuple[float, float, float]:
    return (float(accountant.noise_multiplier), float(accountant.sampling_rate), float(accountant.delta))
