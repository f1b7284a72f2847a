"""Shared fixtures of the SecureBoost tests: small data sets, a federated run over MemoryHub, tree comparison."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from jointly.channel.memory import MemoryHub
from jointly.learn.vertical.secureboost import (
    GuestModel,
    HostModel,
    ReferenceBooster,
    SecureBoostConfig,
    SecureBoostGuest,
    SecureBoostHost,
)

#: 512-bit keys keep the suite fast; never use them outside tests
FAST = SecureBoostConfig(n_trees=3, max_depth=3, key_bits=512, allow_unsafe_key_size=True, max_bins=16)


def config(**changes: object) -> SecureBoostConfig:
    return replace(FAST, **changes)  # type: ignore[arg-type]


def synthetic(
    n: int, task: str, *, seed: int = 0, n_classes: int = 2, widths: tuple[int, ...] = (3, 4)
) -> tuple[list[pd.DataFrame], np.ndarray]:
    """Column blocks (guest first) of a data set whose label depends on every block; some values missing."""
    rng = np.random.default_rng(seed)
    blocks = []
    signal = np.zeros(n)
    for b, w in enumerate(widths):
        X = rng.normal(size=(n, w))
        X[:, 0] = np.round(X[:, 0], 1)  # ties and few distinct values
        if w > 1:
            X[rng.random(n) < 0.1, 1] = np.nan  # missing values
        signal += np.nan_to_num(X[:, 0]) * (1.0 + b) - np.nan_to_num(X[:, -1]) * 0.5
        blocks.append(pd.DataFrame(X, columns=[f"b{b}_{j}" for j in range(w)]))
    if task == "binary":
        y = (signal + rng.normal(scale=0.5, size=n) > 0).astype(float)
    elif task == "multiclass":
        cuts = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1])
        y = np.searchsorted(cuts, signal).astype(float)
    else:
        y = 3.0 * signal + 10.0 + rng.normal(size=n)
    return blocks, y


@dataclass
class Federated:
    guest: SecureBoostGuest
    hosts: dict[str, SecureBoostHost]
    hub: MemoryHub
    output: np.ndarray | None  # the guest's federated predict output on the training rows


def run_federated(
    cfg: SecureBoostConfig,
    X_guest: pd.DataFrame | np.ndarray,
    y: np.ndarray,
    hosts: Mapping[str, pd.DataFrame | np.ndarray],
    *,
    predict: bool = True,
) -> Federated:
    names = ["guest", *hosts]
    hub = MemoryHub(names)

    def guest(ch):  # type: ignore[no-untyped-def]
        est = SecureBoostGuest(cfg, ch, hosts=list(hosts)).fit(X_guest, y)
        out = None
        if predict:
            out = est.predict_proba(X_guest) if cfg.task != "regression" else est.predict(X_guest)
        return est, out

    def host(name):  # type: ignore[no-untyped-def]
        def fn(ch):  # type: ignore[no-untyped-def]
            est = SecureBoostHost(cfg, ch, guest="guest").fit(hosts[name])
            if predict:
                est.serve_predict(hosts[name])
            return est

        return fn

    res = hub.run({"guest": guest, **{h: host(h) for h in hosts}}, timeout=120)
    est, out = res["guest"]
    return Federated(est, {h: res[h] for h in hosts}, hub, out)


def reference(cfg: SecureBoostConfig, blocks: list[tuple[str, pd.DataFrame]], y: np.ndarray) -> ReferenceBooster:
    X = pd.concat([df for _, df in blocks], axis=1)
    return ReferenceBooster(cfg, blocks=[(name, df.shape[1]) for name, df in blocks]).fit(X, y)


def resolved_trees(model: GuestModel, hosts: Mapping[str, HostModel]) -> list[list[tuple[object, ...]]]:
    """Every tree as a list of nodes with host splits replaced by (feature name, threshold)."""
    out = []
    for tree in model.trees:
        nodes: list[tuple[object, ...]] = []
        for node in tree.nodes:
            if node.is_leaf:
                nodes.append(("leaf", node.value))
            elif node.is_remote:
                s = hosts[node.party].splits[node.split]
                nodes.append(("split", s.feature, s.threshold, node.left, node.right))
            else:
                nodes.append(("split", model.feature_names[node.feature], node.threshold, node.left, node.right))
        out.append(nodes)
    return out
