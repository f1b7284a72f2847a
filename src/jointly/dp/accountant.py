"""Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism.

One step of the mechanism: every record (in federated learning: every client) is
included independently with probability ``q`` (the sampling rate), the included
contributions are clipped to L2 norm ``C`` and summed, and Gaussian noise of
standard deviation ``z * C`` is added (``z`` is the noise multiplier).

RDP of one step at order ``alpha`` is ``log(A_alpha) / (alpha - 1)`` (Mironov,
Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
Mechanism", arXiv:1908.10530, Sec. 3.3), exact for integer orders and computed
with the erfc series for fractional orders.  RDP composes additively over steps,
so the accountant keeps one per-step RDP vector and a step counter.  The
conversion to ``(epsilon, delta)`` uses the improved bound of Canonne, Kamath,
Steinke (arXiv:2004.00010, Prop. 12), minimised over the order grid.

The orders, the formulas and the conversion follow Google's ``dp-accounting``
0.6.0 (``RdpAccountant`` with ``PoissonSampledDpEvent(GaussianDpEvent)``, add-or-
remove-one neighbours); the unit tests check this module against values computed
with that library.  We carry our own copy because the library pulls in
``dm-tree`` (a C extension), ``absl-py`` and pins ``attrs<24``.

What it protects: the released outputs of ``steps`` runs of the mechanism are
``(epsilon, delta)``-DP with respect to adding or removing one record (client).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from jointly.errors import ConfigError

__all__ = ["DEFAULT_RDP_ORDERS", "RdpAccountant", "compute_epsilon", "compute_rdp_sampled_gaussian"]

#: The order grid of dp-accounting's ``RdpAccountant``.
DEFAULT_RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(11, 64)] + [128.0, 256.0, 512.0, 1024.0]
)

_MAX_FRAC_TERMS = 1000


def _log_add(logx: float, logy: float) -> float:
    a, b = min(logx, logy), max(logx, logy)
    if a == -math.inf:
        return b
    return math.log1p(math.exp(a - b)) + b


def _log_comb(n: float, k: float) -> float:
    return float(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1))


def _log_erfc(x: float) -> float:
    return math.log(2.0) + float(special.log_ndtr(-x * math.sqrt(2.0)))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha for integer alpha: log sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2))."""
    log_a = -math.inf
    log1mq = math.log1p(-q)
    logq = math.log(q)
    for k in range(alpha + 1):
        term = _log_comb(alpha, k) + k * logq + (alpha - k) * log1mq + (k * k - k) / (2.0 * sigma**2)
        log_a = _log_add(log_a, term)
    return log_a


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    """log A_alpha for fractional alpha (arXiv:1908.10530 Sec. 3.3); ``inf`` if the series does not converge."""
    log_a0, log_a1 = -math.inf, -math.inf
    z0 = sigma**2 * math.log(1.0 / q - 1.0) + 0.5
    log1mq = math.log1p(-q)
    logq = math.log(q)
    last_s0 = last_s1 = -math.inf
    for i in range(_MAX_FRAC_TERMS):
        log_coef = _log_comb(alpha, i)
        j = alpha - i
        log_t0 = log_coef + i * logq + j * log1mq
        log_t1 = log_coef + j * logq + i * log1mq
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2.0) * sigma))
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2.0) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2.0 * sigma**2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2.0 * sigma**2) + log_e1
        log_a0 = _log_add(log_a0, log_s0)
        log_a1 = _log_add(log_a1, log_s1)
        total = _log_add(log_a0, log_a1)
        if log_s0 < last_s0 and log_s1 < last_s1 and max(log_s0, log_s1) < total - 30:
            return total
        last_s0, last_s1 = log_s0, log_s1
    return math.inf  # not converged: exclude this order (conservative)


def compute_rdp_sampled_gaussian(q: float, noise_multiplier: float, orders: tuple[float, ...]) -> np.ndarray:
    """Per-step RDP of the Poisson-subsampled Gaussian mechanism at each order (``inf`` where unbounded)."""
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"sampling rate must be in [0, 1], got {q}")
    if noise_multiplier < 0:
        raise ConfigError(f"noise multiplier must be non-negative, got {noise_multiplier}")
    out = np.empty(len(orders), dtype=np.float64)
    for idx, alpha in enumerate(orders):
        if q == 0.0:
            out[idx] = 0.0
        elif math.isinf(alpha) or noise_multiplier == 0.0:
            out[idx] = math.inf
        elif q == 1.0:
            out[idx] = alpha / (2.0 * noise_multiplier**2)
        elif float(alpha).is_integer():
            out[idx] = _log_a_int(q, noise_multiplier, int(alpha)) / (alpha - 1.0)
        else:
            out[idx] = _log_a_frac(q, noise_multiplier, alpha) / (alpha - 1.0)
    return out


def compute_epsilon(orders: tuple[float, ...], rdp: np.ndarray, delta: float) -> tuple[float, float]:
    """Smallest epsilon over the orders for the given delta (arXiv:2004.00010 Prop. 12); returns (eps, order)."""
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta must be in (0, 1), got {delta}")
    best, best_order = math.inf, 0.0
    for alpha, r_raw in zip(orders, rdp, strict=True):
        r = float(r_raw)
        if r < 0 or delta**2 + math.expm1(-r) > 0:
            eps = 0.0
        elif alpha > 1.01 and math.isfinite(r):
            eps = r + math.log1p(-1.0 / alpha) - math.log(delta * alpha) / (alpha - 1.0)
        else:
            eps = math.inf
        if eps < best:
            best, best_order = eps, alpha
    return max(0.0, best), best_order


@dataclass(frozen=True)
class _Params:
    noise_multiplier: float
    sampling_rate: float
    delta: float


class RdpAccountant:
    """Counts steps of one Poisson-subsampled Gaussian mechanism and converts them to ``(epsilon, delta)``.

    ``noise_multiplier`` is ``z`` (noise std divided by the L2 sensitivity), ``sampling_rate`` is ``q``
    (1.0 when every record / client takes part in every step), ``delta`` the target delta.
    ``step`` records steps that were actually run; ``epsilon_after`` asks "what if" without
    recording anything.  Use :class:`jointly.dp.budget.PrivacyBudget` to refuse steps that would
    overspend rather than calling ``step`` directly.
    """

    def __init__(
        self,
        noise_multiplier: float,
        sampling_rate: float,
        delta: float,
        *,
        orders: tuple[float, ...] = DEFAULT_RDP_ORDERS,
    ) -> None:
        if not math.isfinite(noise_multiplier) or noise_multiplier <= 0:
            raise ConfigError(f"noise_multiplier must be a positive number, got {noise_multiplier}")
        if not 0.0 < sampling_rate <= 1.0:
            raise ConfigError(f"sampling_rate must be in (0, 1], got {sampling_rate}")
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"delta must be in (0, 1), got {delta}")
        if not orders or any(a <= 1.0 for a in orders):
            raise ConfigError("orders must be a non-empty sequence of numbers > 1")
        self._params = _Params(float(noise_multiplier), float(sampling_rate), float(delta))
        self._orders = tuple(float(a) for a in orders)
        self._rdp_per_step = compute_rdp_sampled_gaussian(self.sampling_rate, self.noise_multiplier, self._orders)
        self._steps = 0

    @property
    def noise_multiplier(self) -> float:
        return self._params.noise_multiplier

    @property
    def sampling_rate(self) -> float:
        return self._params.sampling_rate

    @property
    def delta(self) -> float:
        return self._params.delta

    @property
    def steps(self) -> int:
        """Steps recorded so far."""
        return self._steps

    def step(self, n: int = 1) -> None:
        """Record ``n`` more steps of the mechanism."""
        self._steps += _check_steps(n)

    def epsilon_after(self, steps: int) -> float:
        """Epsilon after ``steps`` *more* steps (on top of those recorded), without recording them."""
        total = self._steps + _check_steps(steps)
        if total == 0:
            return 0.0
        return compute_epsilon(self._orders, self._rdp_per_step * total, self.delta)[0]

    def epsilon(self) -> float:
        """Epsilon spent by the steps recorded so far (at this accountant's delta)."""
        return self.epsilon_after(0)

    def state_dict(self) -> dict[str, Any]:
        """Plain, codec-safe state for checkpoints (parameters included, so a mismatch is detected on load)."""
        return {
            "noise_multiplier": self.noise_multiplier,
            "sampling_rate": self.sampling_rate,
            "delta": self.delta,
            "orders": list(self._orders),
            "steps": self._steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step count; refuses a state recorded for a different mechanism."""
        try:
            params = _Params(float(state["noise_multiplier"]), float(state["sampling_rate"]), float(state["delta"]))
            orders = tuple(float(a) for a in state["orders"])
            steps = int(state["steps"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed accountant state: {exc!r}") from exc
        if params != self._params or orders != self._orders:
            raise ConfigError(
                f"accountant state is for {params} (and its order grid), this accountant is {self._params}"
            )
        self._steps = _check_steps(steps)

    def __repr__(self) -> str:
        return (
            f"RdpAccountant(noise_multiplier={self.noise_multiplier}, sampling_rate={self.sampling_rate}, "
            f"delta={self.delta}, steps={self._steps})"
        )


def _check_steps(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigError(f"number of steps must be a non-negative integer, got {n!r}")
    return int(n)
