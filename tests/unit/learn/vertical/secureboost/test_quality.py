"""Breast cancer split across two parties: the joint model beats the guest alone and equals the reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from jointly.channel.memory import MemoryHub
from jointly.crypto.paillier import set_workers
from jointly.learn.metrics import roc_auc
from jointly.learn.vertical.secureboost import ReferenceBooster, SecureBoostGuest, SecureBoostHost

from ._helpers import config


@pytest.fixture(autouse=True)
def _one_worker() -> None:
    set_workers(1)


def test_joint_model_beats_guest_only_on_breast_cancer() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    cfg = config(n_trees=10, max_depth=3, max_bins=32)
    hub = MemoryHub(["guest", "host"])

    def guest(ch):  # type: ignore[no-untyped-def]
        est = SecureBoostGuest(cfg, ch, hosts=["host"]).fit(X_train[:, :10], y_train)
        return est, est.predict_proba(X_test[:, :10])[:, 1]

    def host(ch):  # type: ignore[no-untyped-def]
        est = SecureBoostHost(cfg, ch, guest="guest").fit(X_train[:, 10:])
        est.serve_predict(X_test[:, 10:])
        return est

    est, joint = hub.run({"guest": guest, "host": host})["guest"]
    alone = ReferenceBooster(cfg).fit(X_train[:, :10], y_train).predict_proba(X_test[:, :10])[:, 1]
    both = ReferenceBooster(cfg, blocks=[("guest", 10), ("host", 20)]).fit(X_train, y_train)

    np.testing.assert_array_equal(joint, both.predict_proba(X_test)[:, 1])
    joint_auc, alone_auc = roc_auc(y_test, joint), roc_auc(y_test, alone)
    assert joint_auc > alone_auc + 0.003
    assert joint_auc > 0.975
    losses = [r["train_loss"] for r in est.history_]
    assert all(b < a for a, b in itertools.pairwise(losses))  # training loss falls every tree
    assert est.history_[-1]["train_auc"] > 0.99


def test_reference_learns_regression_and_multiclass() -> None:
    from ._helpers import synthetic

    blocks, y = synthetic(400, "regression", seed=11)
    X = np.hstack([b.to_numpy() for b in blocks])
    reg = ReferenceBooster(config(task="regression", n_trees=20, max_depth=3)).fit(X, y)
    rmse = float(np.sqrt(np.mean((reg.predict(X) - y) ** 2)))
    assert rmse < 0.35 * float(y.std())
    assert reg.history_[-1]["train_rmse"] == pytest.approx(rmse)

    blocks, y = synthetic(400, "multiclass", seed=12, n_classes=4)
    X = np.hstack([b.to_numpy() for b in blocks])
    clf = ReferenceBooster(config(task="multiclass", n_classes=4, n_trees=10, max_depth=3)).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (400, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (clf.predict(X) == y).mean() > 0.8
