"""SS-LR on vertically partitioned data: same weights as the plaintext twin, only result parties get them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jointly.channel.memory import MemoryHub
from jointly.errors import ConfigError, DataError
from jointly.protocols.mpc import MpcRoles, SslrConfig, SslrResult, train_sslr
from jointly.protocols.mpc.sslr import train_plain

PARTIES = ("bank", "telco", "auditor")
ROLES = MpcRoles(data=("bank", "telco"), compute=("bank", "telco"), result=("bank",), dealer="auditor")
RNG = np.random.default_rng(5)
N = 300
FEATURES = RNG.normal(size=(N, 5))
TRUE_W = np.array([1.5, -2.0, 0.5, 0.0, 1.0])
LABELS = (FEATURES @ TRUE_W - 0.4 + RNG.logistic(size=N) > 0).astype(float)
BLOCKS = {"bank": FEATURES[:, :3], "telco": FEATURES[:, 3:]}


def train(config: SslrConfig, roles: MpcRoles = ROLES) -> dict[str, Any]:
    hub = MemoryHub(PARTIES)

    def party(name: str) -> Any:
        labels = LABELS if name == config.label_party else None
        return lambda ch: train_sslr(ch, roles, features=BLOCKS.get(name), labels=labels, config=config)

    return hub.run({p: party(p) for p in PARTIES}, timeout=60)


@pytest.mark.parametrize("sigmoid", ["piecewise", "taylor"])
def test_weights_match_the_plaintext_twin(sigmoid: str) -> None:
    config = SslrConfig(label_party="telco", iterations=15, learning_rate=1.0, batch_size=100, sigmoid=sigmoid)
    out = train(config)
    model = out["bank"]
    assert isinstance(model, SslrResult)
    assert out["telco"] is None and out["auditor"] is None
    w, b = train_plain(FEATURES, LABELS, config)
    # fixed-point error accumulates over the steps: a few 1e-3 at most
    assert np.abs(model.weights - w).max() < 5e-3
    assert abs(model.intercept - b) < 5e-3
    assert model.blocks == {"bank": (0, 3), "telco": (3, 5)}
    # and the model is useful: right sign on the strong features, decent accuracy
    assert np.sign(model.weights[[0, 1, 4]]).tolist() == [1.0, -1.0, 1.0]
    majority = max(LABELS.mean(), 1 - LABELS.mean())
    assert ((model.predict_proba(FEATURES) > 0.5) == LABELS).mean() > majority + 0.1


def test_bad_config_and_labels() -> None:
    with pytest.raises(ConfigError):
        SslrConfig(label_party="telco", sigmoid="tanh")
    with pytest.raises(ConfigError):
        SslrConfig(label_party="telco", iterations=0)
    with pytest.raises(ConfigError):
        train(SslrConfig(label_party="auditor"))
    bad = LABELS.copy()
    bad[0] = 2.0
    hub = MemoryHub(PARTIES)
    cfg = SslrConfig(label_party="telco", iterations=1)

    def party(name: str) -> Any:
        labels = bad if name == "telco" else None
        return lambda ch: train_sslr(ch, ROLES, features=BLOCKS.get(name), labels=labels, config=cfg)

    with pytest.raises(DataError):
        hub.run({p: party(p) for p in PARTIES}, timeout=30)
