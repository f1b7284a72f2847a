"""SecureBoost over MemoryHub grows exactly the trees of the plaintext reference on the concatenated data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jointly.channel.memory import MemoryHub
from jointly.crypto.paillier import set_workers
from jointly.learn.vertical.secureboost import (
    GuestModel,
    HostModel,
    SecureBoostGuest,
    SecureBoostHost,
    predict_guest,
    predict_host,
)

from ._helpers import config, reference, resolved_trees, run_federated, synthetic


@pytest.fixture(autouse=True)
def _one_worker() -> None:
    set_workers(1)


CASES = [
    ("binary", 1, {}),
    ("binary", 2, {}),
    ("multiclass", 1, {"n_classes": 4, "key_bits": 1024}),  # 1024 bits: several packed bins per ciphertext
    # large min_child_weight: some children cannot split, so hosts also build histograms of leaves
    ("regression", 2, {"min_child_weight": 30, "max_depth": 4}),
    (
        "binary",
        2,
        {
            "subsample": 0.7,
            "colsample": 0.6,
            "validation_fraction": 0.2,
            "early_stopping_rounds": 1,
            "learning_rate": 0.5,
            "max_depth": 4,
            "n_trees": 10,
        },
    ),
]


@pytest.mark.parametrize(("task", "n_hosts", "extra"), CASES)
def test_same_trees_and_predictions_as_reference(task: str, n_hosts: int, extra: dict[str, object]) -> None:
    cfg = config(**{"task": task, "n_trees": 4, **extra})
    widths = (3, 4, 3)[: n_hosts + 1]
    blocks, y = synthetic(
        240, task, seed=2 if "subsample" in extra else n_hosts, n_classes=cfg.n_classes, widths=widths
    )
    names = ["guest"] + [f"host{i}" for i in range(n_hosts)]
    fed = run_federated(cfg, blocks[0], y, dict(zip(names[1:], blocks[1:], strict=True)))
    ref = reference(cfg, list(zip(names, blocks, strict=True)), y)

    host_models = {h: est.model_ for h, est in fed.hosts.items()}
    got, want = resolved_trees(fed.guest.model_, host_models), resolved_trees(ref.model_, {})
    assert got == want  # same structure, same features and thresholds, bit-identical leaf weights
    assert any(n[0] == "split" and not str(n[1]).startswith("b0_") for t in got for n in t)  # hosts do split
    assert fed.guest.history_ == [
        dict(r, seconds=h["seconds"]) for r, h in zip(ref.history_, fed.guest.history_, strict=True)
    ]

    X_all = np.hstack([b.to_numpy() for b in blocks])
    expected = ref.predict_proba(X_all) if task != "regression" else ref.predict(X_all)
    assert fed.output is not None
    np.testing.assert_array_equal(fed.output, expected)
    if "early_stopping_rounds" in extra:
        assert len(fed.guest.model_.trees) == fed.guest.best_iteration_ + 1 < len(fed.guest.history_)
        used = fed.guest.model_.remote_splits()
        assert {h: sorted(m.splits) for h, m in host_models.items()} == used  # hosts keep only the used splits


def test_models_round_trip_and_predict_from_stored_parts() -> None:
    cfg = config(task="multiclass", n_classes=3)
    blocks, y = synthetic(150, "multiclass", seed=5, n_classes=3)
    fed = run_federated(cfg, blocks[0], y, {"host": blocks[1]})
    guest_dict = json.loads(json.dumps(fed.guest.model_.to_dict(), allow_nan=False))
    host_dict = json.loads(json.dumps(fed.hosts["host"].model_.to_dict(), allow_nan=False))
    guest_model, host_model = GuestModel.from_dict(guest_dict), HostModel.from_dict(host_dict)
    assert guest_model.to_dict() == fed.guest.model_.to_dict()
    assert host_model == fed.hosts["host"].model_

    new_g, new_h = blocks[0].iloc[::-1].reset_index(drop=True), blocks[1].iloc[::-1].reset_index(drop=True)
    hub = MemoryHub(["guest", "host"])
    res = hub.run(
        {
            "guest": lambda ch: predict_guest(ch, guest_model, new_g, ["host"]),
            "host": lambda ch: predict_host(ch, host_model, new_h, "guest"),
        }
    )
    assert fed.output is not None
    np.testing.assert_array_equal(res["guest"], fed.output[::-1])
    np.testing.assert_allclose(res["guest"].sum(axis=1), 1.0)

    # the estimators' stored parts (config + model) serve the same predictions
    guest_part = json.loads(json.dumps(fed.guest.to_dict()))
    host_part = json.loads(json.dumps(fed.hosts["host"].to_dict()))
    hub = MemoryHub(["guest", "host"])
    res = hub.run(
        {
            "guest": lambda ch: SecureBoostGuest.from_dict(guest_part, ch).predict_proba(new_g),
            "host": lambda ch: SecureBoostHost.from_dict(host_part, ch).serve_predict(new_h),
        }
    )
    np.testing.assert_array_equal(res["guest"], fed.output[::-1])


def test_estimator_predict_labels_and_proba_shapes() -> None:
    cfg = config()
    blocks, y = synthetic(120, "binary", seed=2)
    hub = MemoryHub(["guest", "host"])

    def guest(ch):  # type: ignore[no-untyped-def]
        est = SecureBoostGuest(cfg, ch, hosts=["host"]).fit(blocks[0], y)
        return est.predict_proba(blocks[0]), est.predict(blocks[0])

    def host(ch):  # type: ignore[no-untyped-def]
        est = SecureBoostHost(cfg, ch, guest="guest").fit(blocks[1])
        est.serve_predict(blocks[1])
        est.serve_predict(blocks[1])

    proba, labels = hub.run({"guest": guest, "host": host})["guest"]
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(labels, (proba[:, 1] >= 0.5).astype(int))
    assert (labels == y).mean() > 0.75


def test_host_without_usable_features_never_wins() -> None:
    cfg = config()
    blocks, y = synthetic(100, "binary", seed=4)
    constant = np.ones((100, 2))
    fed = run_federated(cfg, blocks[0], y, {"host": constant}, predict=False)
    ref = reference(cfg, [("guest", blocks[0])], y)
    assert resolved_trees(fed.guest.model_, {"host": fed.hosts["host"].model_}) == resolved_trees(ref.model_, {})
    assert fed.hosts["host"].model_.splits == {}


def test_gradients_in_blocks_and_pooled_histograms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradients in many small messages, histograms and encryption in the worker pool in small jobs: same trees."""
    from jointly.crypto import _paillier_pool as runner
    from jointly.learn.vertical.secureboost import guest as guest_module

    cfg = config(n_trees=2, max_depth=3)
    blocks, y = synthetic(90, "binary", seed=6, widths=(3, 4, 3))
    width = 2 * cfg.key_bits // 8
    monkeypatch.setattr(guest_module, "GRADIENT_BLOCK_BYTES", 16 * width)  # 6 blocks per tree
    monkeypatch.setattr(runner, "_PARALLEL_MIN_UNITS", 0.0)
    monkeypatch.setattr(runner, "MAX_CHUNK_BYTES", 8 * width)
    set_workers(2)
    try:
        fed = run_federated(cfg, blocks[0], y, {"host0": blocks[1], "host1": blocks[2]}, predict=False)
    finally:
        set_workers(1)
    gradient_msgs = [tag for src, dst, tag, _ in fed.hub.log if dst == "host0" and "gradients" in tag]
    assert len(gradient_msgs) == 2 * 6
    ref = reference(cfg, [("guest", blocks[0]), ("host0", blocks[1]), ("host1", blocks[2])], y)
    host_models = {h: est.model_ for h, est in fed.hosts.items()}
    assert resolved_trees(fed.guest.model_, host_models) == resolved_trees(ref.model_, {})
