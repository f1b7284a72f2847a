"""What crosses the wire: hosts get no plaintext gradients, labels or scores; the guest gets no host values."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np
import pytest

from jointly.channel.codec import decode
from jointly.crypto.paillier import WireCiphertexts, set_workers
from jointly.learn.vertical.secureboost.binning import BinnedMatrix
from jointly.learn.vertical.secureboost.loss import Logistic
from jointly.learn.vertical.secureboost.packing import quantize

from ._helpers import config, run_federated, synthetic


@pytest.fixture(autouse=True)
def _one_worker() -> None:
    set_workers(1)


def walk(value: object) -> Iterator[object]:
    """Every leaf value of a decoded message (dataclass fields, lists, dicts, arrays as a whole)."""
    if isinstance(value, list | tuple):
        for v in value:
            yield from walk(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk(k)
            yield from walk(v)
    elif hasattr(value, "__dataclass_fields__"):
        if isinstance(value, WireCiphertexts):
            yield value
            return
        for name in value.__dataclass_fields__:
            yield from walk(getattr(value, name))
    else:
        yield value


def ciphertexts(msg: WireCiphertexts, width: int) -> list[int]:
    return [int.from_bytes(msg.data[i * width : (i + 1) * width], "big") for i in range(msg.count)]


def test_what_hosts_and_guest_receive() -> None:
    cfg = config(n_trees=3)
    blocks, y = synthetic(200, "binary", seed=7, widths=(3, 4))
    fed = run_federated(cfg, blocks[0], y, {"host": blocks[1]})
    assert fed.output is not None  # scores exist, but no float (hence no score) ever reaches the host

    # the guest's first-tree fixed-point gradients and hessians, which must never reach a host in clear
    obj = Logistic.fit(y)
    g, h = obj.grad_hess(y, np.tile(obj.base_score(), (len(y), 1)))
    q = quantize(g, h, cfg.frac_bits)
    secrets_int = [y.astype(np.int64), q[:, 0], q[:, 1]]

    host_values = blocks[1].to_numpy()
    binned = BinnedMatrix.fit(host_values, list(blocks[1].columns), cfg.max_bins)
    edges = {float(e) for f in binned.features for e in f.edges}
    edges |= {float(s.threshold) for s in fed.hosts["host"].model_.splits.values()}
    edges |= {float(v) for v in host_values[~np.isnan(host_values)]}
    patterns = [struct.pack(fmt, v) for v in edges for fmt in ("<d", ">d")]

    n_key = None
    to_host = [(tag, decode(data)) for src, dst, tag, data in fed.hub.log if dst == "host"]
    to_guest = [(tag, data, decode(data)) for src, dst, tag, data in fed.hub.log if dst == "guest"]
    assert to_host and to_guest
    for tag, msg in to_host:
        for leaf in walk(msg):
            assert not isinstance(leaf, float), f"a float went to the host in {tag}"
            if isinstance(leaf, np.ndarray):
                assert leaf.dtype.kind in "iub", f"{tag} carries a {leaf.dtype} array"
                flat = leaf.reshape(-1).astype(np.int64)
                for secret in secrets_int:
                    assert not (flat.shape == secret.shape and np.array_equal(flat, secret)), tag
            if isinstance(leaf, int) and abs(leaf) > 2**64:  # only the public key's modulus is a big int
                n_key = leaf if n_key is None else n_key
                assert leaf == n_key, f"an unexpected big integer went to the host in {tag}"
    assert n_key is not None
    width = (2 * n_key.bit_length() + 7) // 8
    seen: set[int] = set()
    for tag, msg in to_host:
        for leaf in walk(msg):
            if isinstance(leaf, WireCiphertexts):
                cts = ciphertexts(leaf, width)
                assert all(n_key < c < n_key * n_key for c in cts), tag  # real ciphertexts, not small plaintexts
                assert seen.isdisjoint(cts)  # fresh randomness everywhere
                seen.update(cts)

    for tag, data, msg in to_guest:
        for leaf in walk(msg):
            assert not isinstance(leaf, float), f"a float went to the guest in {tag}"
            if isinstance(leaf, np.ndarray):
                raise AssertionError(f"an array went to the guest in {tag}")
            if isinstance(leaf, int):
                assert abs(leaf) < 2**20, f"a number went to the guest in {tag}"  # node ids only
            if isinstance(leaf, WireCiphertexts):
                cts = ciphertexts(leaf, width)
                assert all(1 <= c < n_key * n_key for c in cts)
                assert seen.isdisjoint(cts)  # re-randomised: not a product the guest could trace
        for p in patterns:
            assert p not in data, f"a host value's float64 bytes went to the guest in {tag}"


def test_guest_model_holds_no_host_information() -> None:
    cfg = config(n_trees=2)
    blocks, y = synthetic(150, "binary", seed=8)
    fed = run_federated(cfg, blocks[0], y, {"host": blocks[1]}, predict=False)
    stored = fed.guest.model_.to_dict()
    text = repr(stored)
    for name in blocks[1].columns:
        assert name not in text
    remote = [n for t in stored["trees"] for n in t["nodes"] if "party" in n]  # type: ignore[attr-defined]
    assert remote and all(set(n) == {"left", "right", "party", "split"} for n in remote)
    host_text = repr(fed.hosts["host"].model_.to_dict())
    assert "value" not in host_text and "b0_" not in host_text  # no leaf weights, no guest features
