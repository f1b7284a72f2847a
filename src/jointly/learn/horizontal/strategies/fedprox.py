"""FedProx (Li et al. 2020): FedAvg aggregation, plus a proximal term the clients add locally.

The server aggregates exactly as FedAvg and sends ``proximal_mu`` in :meth:`FedProx.client_config`.
Each client then minimises ``loss(w) + (mu / 2) * ||w - w_global||^2`` during its local epochs,
where ``w_global`` is the model it received this round; this keeps heterogeneous clients close to
the global model.  ``mu = 0`` is FedAvg.  Nothing extra is revealed to anyone.
"""

from __future__ import annotations

import math

from jointly.errors import ConfigError
from jointly.learn.horizontal.strategies.base import ClientConfigValue, Sampling
from jointly.learn.horizontal.strategies.fedavg import FedAvg

__all__ = ["FedProx"]


class FedProx(FedAvg):
    """FedAvg whose clients add ``(proximal_mu / 2) * ||w - w_global||^2`` to their local loss."""

    def __init__(self, *, proximal_mu: float, sampling: Sampling | None = None, local_epochs: int = 1) -> None:
        super().__init__(sampling=sampling, local_epochs=local_epochs)
        if not (math.isfinite(proximal_mu) and proximal_mu >= 0):
            raise ConfigError(f"proximal_mu must be a finite non-negative number, got {proximal_mu}")
        self.proximal_mu = float(proximal_mu)

    def client_config(self, round: int) -> dict[str, ClientConfigValue]:
        """FedAvg's config plus ``proximal_mu``."""
        return {**super().client_config(round), "proximal_mu": self.proximal_mu}
