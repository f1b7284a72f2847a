"""Secret-sharing MPC: additive shares over ``Z_2^64`` between two compute parties.

Roles (:class:`MpcRoles`): data parties provide inputs, two compute parties hold shares and
compute, result parties receive outputs, and an optional dealer deals correlated randomness
(without one, the compute parties make Beaver triples themselves with Paillier).

Modules, one per protocol:

* :mod:`.triples` -- Beaver/AND triples and truncation pairs, from a dealer or from Paillier;
* :mod:`.engine` -- the two-party engine: multiplication, matrix products, truncation,
  comparison (A2B with a parallel-prefix adder), input sharing and output to result parties;
* :mod:`.compare` -- ReLU, max/min, argmax, sorting-free quantile;
* :mod:`.numeric` -- division, reciprocal, reciprocal square root (normalisation + Newton);
* :mod:`.session` -- roles and the run of one job on every party;
* :mod:`.stats` -- joint statistics (:func:`joint_statistic`);
* :mod:`.sslr` -- secret-shared logistic regression on vertical data (:func:`train_sslr`).

Security model: semi-honest parties; the two compute parties do not collude with each other,
and the dealer (if any) colludes with neither.  What each party sees is listed in each module.
"""

from __future__ import annotations

from jointly.crypto.shares import SecretBranchError, SharedTensor
from jointly.protocols.mpc.engine import TwoPartyEngine, reveal_to, share_input
from jointly.protocols.mpc.session import MpcRoles, make_engine, run_session
from jointly.protocols.mpc.sslr import SslrConfig, SslrResult, train_sslr
from jointly.protocols.mpc.stats import StatRequest, joint_statistic
from jointly.protocols.mpc.triples import DealerSource, PaillierSource, run_dealer

__all__ = [
    "DealerSource",
    "MpcRoles",
    "PaillierSource",
    "SecretBranchError",
    "SharedTensor",
    "SslrConfig",
    "SslrResult",
    "StatRequest",
    "TwoPartyEngine",
    "joint_statistic",
    "make_engine",
    "reveal_to",
    "run_dealer",
    "run_session",
    "share_input",
    "train_sslr",
]
