"""Bad data, mismatched parties and malformed messages fail loudly with the right error."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from jointly.crypto.paillier import EncryptedVector, WireCiphertexts, set_workers
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.learn.vertical.secureboost import SecureBoostConfig
from jointly.learn.vertical.secureboost import guest as guest_module
from jointly.learn.vertical.secureboost import host as host_module
from jointly.learn.vertical.secureboost.messages import Histograms, Routes

from ._helpers import config, run_federated, synthetic


@pytest.fixture(autouse=True)
def _one_worker() -> None:
    set_workers(1)


def _data(n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    blocks, y = synthetic(n, "binary", seed=3)
    return blocks[0].to_numpy(), blocks[1].to_numpy(), y


def test_mismatched_row_counts() -> None:
    Xg, Xh, y = _data()
    with pytest.raises(DataError, match="aligned rows"):
        run_federated(config(), Xg, y, {"host": Xh[:-1]})


@pytest.mark.parametrize(
    ("task", "labels", "match"),
    [
        ("binary", lambda y: np.where(np.arange(len(y)) == 5, np.nan, y), "NaN"),
        ("binary", lambda y: y * 2, r"\{0, 1\}"),
        ("binary", lambda y: np.zeros_like(y), "both classes"),
        ("multiclass", lambda y: y + 3, "0 .. 2"),
        ("regression", lambda y: y[:-1], "labels for"),
    ],
)
def test_bad_labels(task: str, labels: Callable[[np.ndarray], np.ndarray], match: str) -> None:
    Xg, Xh, y = _data()
    cfg = config(task=task, n_classes=3 if task == "multiclass" else 2)
    with pytest.raises(DataError, match=match):
        run_federated(cfg, Xg, labels(y), {"host": Xh})


def test_infinite_feature_values() -> None:
    Xg, Xh, y = _data()
    Xh[3, 1] = np.inf
    with pytest.raises(DataError, match="infinite"):
        run_federated(config(), Xg, y, {"host": Xh})


def test_different_configurations() -> None:
    Xg, Xh, y = _data()
    from jointly.channel.memory import MemoryHub

    hub = MemoryHub(["guest", "host"])
    cfg = config()
    with pytest.raises(ConfigError, match="configuration differs"):
        hub.run(
            {
                "guest": lambda ch: guest_module.SecureBoostGuest(cfg, ch, hosts=["host"]).fit(Xg, y),
                "host": lambda ch: host_module.SecureBoostHost(replace(cfg, max_depth=2), ch, guest="guest").fit(Xh),
            }
        )


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="not a safe Paillier key size"):
        SecureBoostConfig(key_bits=1024)
    with pytest.raises(ConfigError, match="early_stopping_rounds needs validation_fraction"):
        SecureBoostConfig(early_stopping_rounds=3)
    with pytest.raises(ConfigError, match="task"):
        SecureBoostConfig(task="ranking")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_classes >= 3"):
        SecureBoostConfig(task="multiclass")
    for bad in ({"learning_rate": 0}, {"subsample": 1.5}, {"max_depth": 0}, {"l2": -1}, {"max_bins": 1}):
        with pytest.raises(ConfigError):
            SecureBoostConfig(**bad)  # type: ignore[arg-type]
    cfg = SecureBoostConfig(task="multiclass", n_classes=4)
    assert SecureBoostConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fingerprint() != SecureBoostConfig().fingerprint()


def _corrupt_ciphertexts(kind: str) -> Callable[..., EncryptedVector]:
    original = host_module._HostTrainer._histograms

    def patched(self, tree, members):  # type: ignore[no-untyped-def]
        good = original(self, tree, members)
        key = good.public_key
        if kind == "missing":
            return good[: len(good) - len(members)]
        if kind == "overflowing slots":  # a valid plaintext below max_int that is no packing of sums
            return key.encrypt_ints([1 << (tree.per * tree.layout.total_bits)] * len(good))
        # the middle band of Z_n: decrypts to something that is neither a positive nor a negative sum
        width = key.ciphertext_bytes
        c = (1 + (key.n // 2) * key.n) % key.nsquare
        wire = WireCiphertexts(key.fingerprint, 0, len(good), c.to_bytes(width, "big") * len(good))
        return EncryptedVector.from_wire(key, wire)

    return patched


@pytest.mark.parametrize(
    ("kind", "match"),
    [("missing", "ciphertexts per node"), ("overflowing slots", "does not decode"), ("middle band", "not decrypt")],
)
def test_malformed_histogram_ciphertexts(kind: str, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Xg, Xh, y = _data()
    monkeypatch.setattr(host_module._HostTrainer, "_histograms", _corrupt_ciphertexts(kind))
    with pytest.raises(ProtocolViolation, match=match):
        run_federated(config(), Xg, y, {"host": Xh})


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda msg: Histograms(split_ids=msg.split_ids[:-3], nodes=msg.nodes), "list of split ids"),
        (lambda msg: Histograms(split_ids=msg.split_ids, nodes=msg.nodes[::-1] + msg.nodes), "other nodes"),
        (lambda msg: Routes(in_node=[], outside=[]), "Routes where Histograms"),
        (
            lambda msg: Histograms(
                split_ids=msg.split_ids,
                nodes=[
                    replace(
                        msg.nodes[0],
                        packed=replace(msg.nodes[0].packed, data=bytes(len(msg.nodes[0].packed.data))),
                    )
                ],
            ),
            r"outside \[1, n\^2\)",
        ),
    ],
)
def test_malformed_histogram_messages(
    corrupt: Callable[[Histograms], object], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Xg, Xh, y = _data()
    real = host_module.Histograms

    def make(**fields: object) -> object:
        return corrupt(real(**fields))  # type: ignore[arg-type]

    monkeypatch.setattr(host_module, "Histograms", make)
    with pytest.raises(ProtocolViolation, match=match):
        run_federated(config(), Xg, y, {"host": Xh})


def test_malformed_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    Xg, Xh, y = _data()
    real = host_module.Routes
    monkeypatch.setattr(host_module, "Routes", lambda in_node, outside: real([b + b"\x00" for b in in_node], outside))
    with pytest.raises(ProtocolViolation, match="packed bits"):
        run_federated(config(), Xg, y, {"host": Xh})


def test_host_refuses_split_ids_it_never_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    Xg, Xh, y = _data()
    monkeypatch.setattr(guest_module.RemoteHost, "_split_id", lambda self, best: secrets.token_bytes(16))
    with pytest.raises(ProtocolViolation, match="did not offer"):
        run_federated(config(), Xg, y, {"host": Xh})


@pytest.mark.parametrize("blocks", [0, 10_000])
def test_host_refuses_impossible_gradient_block_counts(blocks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    Xg, Xh, y = _data()
    real = guest_module.TreeStart

    def make(**fields: object) -> object:
        return real(**{**fields, "blocks": blocks}) if not fields["stop"] else real(**fields)  # type: ignore[arg-type]

    monkeypatch.setattr(guest_module, "TreeStart", make)
    with pytest.raises(ProtocolViolation, match="cannot come in"):
        run_federated(config(), Xg, y, {"host": Xh})


def test_host_refuses_gradients_that_miss_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    Xg, Xh, y = _data()
    real = guest_module._Encryptor.__call__

    def short(self, ctx):  # type: ignore[no-untyped-def]
        real(self, ctx)
        self.vector = self.vector[:-1]

    monkeypatch.setattr(guest_module._Encryptor, "__call__", short)
    with pytest.raises(ProtocolViolation, match="79 ciphertexts, expected 80"):
        run_federated(config(), Xg, y, {"host": Xh})
