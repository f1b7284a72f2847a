"""Server optimisers on the FedAvg pseudo-gradient: FedAdagrad, FedAdam, FedYogi.

Reddi et al. 2021, "Adaptive Federated Optimization" (ICLR), Algorithm 2.  Each round ``t``:

* ``delta_t = mean_i(w_i) - x_t``, the pseudo-gradient; the mean is FedAvg's example-weighted
  mean (the paper averages uniformly; weighting by examples, as Flower does, keeps the strategy
  linear so secure aggregation can wrap it);
* ``m_t = beta1 * m_{t-1} + (1 - beta1) * delta_t`` with ``m_{-1} = 0``;
* ``v_t`` per optimiser, with ``v_{-1} = tau^2`` (the paper asks for ``v_{-1} >= tau^2``):

  - FedAdagrad: ``v_t = v_{t-1} + delta_t^2``
  - FedAdam:    ``v_t = beta2 * v_{t-1} + (1 - beta2) * delta_t^2``
  - FedYogi:    ``v_t = v_{t-1} - (1 - beta2) * delta_t^2 * sign(v_{t-1} - delta_t^2)``

* ``x_{t+1} = x_t + eta * m_t / (sqrt(v_t) + tau)``.

No bias correction (as in the paper).  ``eta_l`` is the *client* learning rate; it is sent to the
clients as ``learning_rate`` in :meth:`FedOpt.client_config`.  The moments ``m`` and ``v`` live in
the strategy; :meth:`FedOpt.state_dict` / :meth:`FedOpt.load_state_dict` save and restore them
with the step count.  Defaults follow Flower's.  The server learns what FedAvg's server learns.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from jointly.errors import ConfigError
from jointly.learn.horizontal.strategies.base import ClientConfigValue, ClientUpdate, Sampling, Strategy
from jointly.learn.horizontal.strategies.fedavg import weighted_mean

__all__ = ["FedAdagrad", "FedAdam", "FedOpt", "FedYogi"]


def _positive(name: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite positive number, got {value}")
    return float(value)


def _unit(name: str, value: float) -> float:
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ConfigError(f"{name} must be in [0, 1), got {value}")
    return float(value)


class FedOpt(Strategy):
    """Adaptive server optimiser on the pseudo-gradient; subclasses define the ``v`` update."""

    is_linear: ClassVar[bool] = True
    accepts_aggregated: ClassVar[bool] = True

    def __init__(
        self,
        *,
        eta: float,
        eta_l: float,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float,
        sampling: Sampling | None = None,
        local_epochs: int = 1,
    ) -> None:
        super().__init__(sampling=sampling, local_epochs=local_epochs)
        self.eta = _positive("eta", eta)
        self.eta_l = _positive("eta_l", eta_l)
        self.beta1 = _unit("beta1", beta1)
        self.beta2 = _unit("beta2", beta2)
        self.tau = _positive("tau", tau)
        self.step = 0
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def client_config(self, round: int) -> dict[str, ClientConfigValue]:
        """FedAvg's config plus the client learning rate ``learning_rate = eta_l``."""
        return {**super().client_config(round), "learning_rate": self.eta_l}

    @abstractmethod
    def _second_moment(self, v: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        """``v_t`` from ``v_{t-1}`` and ``delta_t ** 2``."""

    def _combine(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        x = [np.asarray(g, dtype=np.float64) for g in global_weights]
        if not self.m:
            self.m = [np.zeros_like(a) for a in x]
            self.v = [np.full_like(a, self.tau**2) for a in x]
        elif [a.shape for a in self.m] != [a.shape for a in x]:
            raise ConfigError("the global model's shapes differ from the optimiser state's (wrong checkpoint?)")
        mean = weighted_mean(updates)
        new_m, new_v, out = [], [], []
        for xi, wi, mi, vi in zip(x, mean, self.m, self.v, strict=True):
            delta = wi - xi
            m_t = self.beta1 * mi + (1.0 - self.beta1) * delta
            v_t = self._second_moment(vi, delta * delta)
            new_m.append(m_t)
            new_v.append(v_t)
            out.append(xi + self.eta * m_t / (np.sqrt(v_t) + self.tau))
        self.m, self.v = new_m, new_v
        self.step += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """``{"step": int, "m": [arrays], "v": [arrays]}`` (copies; empty lists before the first round)."""
        return {"step": self.step, "m": [a.copy() for a in self.m], "v": [a.copy() for a in self.v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (checked: keys, step, matching moment shapes)."""
        if set(state) != {"step", "m", "v"}:
            raise ConfigError(f"{type(self).__name__} state needs keys step, m, v; got {sorted(state)}")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
            raise ConfigError(f"state step must be a non-negative integer, got {step!r}")
        m = [np.array(a, dtype=np.float64) for a in state["m"]]
        v = [np.array(a, dtype=np.float64) for a in state["v"]]
        if [a.shape for a in m] != [a.shape for a in v]:
            raise ConfigError("state m and v have different shapes")
        if any(np.any(a < 0) or not np.all(np.isfinite(a)) for a in v):
            raise ConfigError("state v must be finite and non-negative")
        self.step, self.m, self.v = int(step), m, v


class FedAdagrad(FedOpt):
    """Server Adagrad: ``v_t = v_{t-1} + delta_t^2``."""

    def __init__(
        self,
        *,
        eta: float = 0.1,
        eta_l: float = 0.1,
        tau: float = 1e-9,
        sampling: Sampling | None = None,
        local_epochs: int = 1,
    ) -> None:
        super().__init__(
            eta=eta, eta_l=eta_l, beta1=0.0, beta2=0.0, tau=tau, sampling=sampling, local_epochs=local_epochs
        )

    def _second_moment(self, v: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        return np.asarray(v + delta_sq)


class FedAdam(FedOpt):
    """Server Adam (no bias correction): ``v_t = beta2 v_{t-1} + (1 - beta2) delta_t^2``."""

    def __init__(
        self,
        *,
        eta: float = 0.1,
        eta_l: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-9,
        sampling: Sampling | None = None,
        local_epochs: int = 1,
    ) -> None:
        super().__init__(
            eta=eta, eta_l=eta_l, beta1=beta1, beta2=beta2, tau=tau, sampling=sampling, local_epochs=local_epochs
        )

    def _second_moment(self, v: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1.0 - self.beta2) * delta_sq


class FedYogi(FedOpt):
    """Server Yogi: ``v_t = v_{t-1} - (1 - beta2) delta_t^2 sign(v_{t-1} - delta_t^2)``."""

    def __init__(
        self,
        *,
        eta: float = 0.01,
        eta_l: float = 0.0316,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        sampling: Sampling | None = None,
        local_epochs: int = 1,
    ) -> None:
        super().__init__(
            eta=eta, eta_l=eta_l, beta1=beta1, beta2=beta2, tau=tau, sampling=sampling, local_epochs=local_epochs
        )

    def _second_moment(self, v: np.ndarray, delta_sq: np.ndarray) -> np.ndarray:
        return np.asarray(v - (1.0 - self.beta2) * delta_sq * np.sign(v - delta_sq))
