"""FedAvg (McMahan et al. 2017): the next global model is the example-weighted mean of the client models.

``w_next = sum_i n_i w_i / sum_i n_i`` over the updates that arrived (clients that dropped out simply
do not count).  Linear: only the weighted sum and the total count are needed, so secure aggregation
can wrap it (a pre-aggregated update with ``num_clients > 1`` is accepted and weighted by its total
``num_examples``).  The server learns each update it is given and each client's example count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from jointly.learn.horizontal.strategies.base import ClientUpdate, Strategy, as_float64

__all__ = ["FedAvg", "weighted_mean"]


def weighted_mean(updates: Sequence[ClientUpdate]) -> list[np.ndarray]:
    """Example-weighted mean of checked updates, in float64."""
    total = float(sum(int(u.num_examples) for u in updates))
    acc: list[np.ndarray] | None = None
    for u in updates:
        scaled = [a * (int(u.num_examples) / total) for a in as_float64(u)]
        acc = scaled if acc is None else [x + y for x, y in zip(acc, scaled, strict=True)]
    if acc is None:  # check_updates guarantees min_clients >= 1 updates
        raise ValueError("no updates to average")
    return acc


class FedAvg(Strategy):
    """Example-weighted federated averaging.

    >>> s = FedAvg()
    >>> g = [np.zeros(2, np.float32)]
    >>> u = [ClientUpdate("a", [np.ones(2, np.float32)], 1), ClientUpdate("b", [np.full(2, 4, np.float32)], 3)]
    >>> s.aggregate(1, g, u)[0].tolist()
    [3.25, 3.25]
    """

    is_linear: ClassVar[bool] = True
    accepts_aggregated: ClassVar[bool] = True

    def _combine(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]:
        return weighted_mean(updates)
