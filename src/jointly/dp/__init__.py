"""jointly.dp: differential privacy building blocks (no I/O, imports only :mod:`jointly.errors`).

* :mod:`jointly.dp.accountant` -- ``RdpAccountant`` for the Poisson-subsampled Gaussian mechanism
* :mod:`jointly.dp.budget` -- ``PrivacyBudget``, which refuses a step that would overspend
* :mod:`jointly.dp.mechanisms` -- clipping, Gaussian noise, adaptive clipping, a secure generator

The federated-learning wrappers that use them live in :mod:`jointly.learn.horizontal.dp`.
"""

from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget

__all__ = ["PrivacyBudget", "RdpAccountant"]
