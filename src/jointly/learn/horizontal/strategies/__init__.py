"""Aggregation strategies for horizontal federated learning (pure numpy, no torch).

A model update is a list of float numpy arrays.  Every strategy has the same four entry points
(:class:`Strategy`): ``configure_round`` (seeded client sampling), ``client_config`` (what clients
are told), ``aggregate`` (the only entry point for updates, so DP and secure aggregation wrap any
strategy) and ``state_dict``/``load_state_dict`` (server optimiser state for checkpoints).
``is_linear`` says whether a strategy needs only the weighted sum (FedAvg, FedProx, FedOpt) and can
therefore run under secure aggregation, or the individual updates (the robust ones).
"""

from jointly.learn.horizontal.strategies.base import ClientConfigValue, ClientUpdate, Sampling, Strategy, TooFewClients
from jointly.learn.horizontal.strategies.fedavg import FedAvg, weighted_mean
from jointly.learn.horizontal.strategies.fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from jointly.learn.horizontal.strategies.fedprox import FedProx
from jointly.learn.horizontal.strategies.robust import Krum, Median, MultiKrum, TrimmedMean

__all__ = [
    "ClientConfigValue",
    "ClientUpdate",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedOpt",
    "FedProx",
    "FedYogi",
    "Krum",
    "Median",
    "MultiKrum",
    "Sampling",
    "Strategy",
    "TooFewClients",
    "TrimmedMean",
    "weighted_mean",
]
