"""Hetero LR over the in-memory channel: both modes, one and two hosts.

Checks that the federated weights equal the plaintext reference, that the joint
model beats the guest alone on breast cancer, and -- decoding every message and
decrypting every ciphertext a party holds the key of -- that no party ever sees
another party's features, labels, partial scores, residuals, gradients or weights.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jointly.channel.codec import decode
from jointly.channel.memory import MemoryHub
from jointly.crypto import paillier
from jointly.crypto.paillier import EncryptedVector, PaillierPrivateKey, PaillierPublicKey, WireCiphertexts
from jointly.errors import ConfigError, DataError
from jointly.learn.vertical import hetero_lr_protocol
from jointly.learn.vertical.hetero_lr import (
    HeteroLRArbiter,
    HeteroLRConfig,
    HeteroLRGuest,
    HeteroLRHost,
    reference_fit,
)
from jointly.learn.vertical.hetero_lr_common import Scaler, epoch_batches, fixed, with_intercept

CFG = HeteroLRConfig(
    key_bits=1024,
    allow_unsafe_key_size=True,
    batch_size=16,
    max_iter=3,
    learning_rate=0.3,
    alpha=0.05,
    tol=0.0,
    lr_schedule="decay",
    decay=0.5,
)
HOST_WIDTHS = {"h1": 3, "h2": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_worker() -> Iterator[None]:
    paillier.set_workers(1)
    yield
    paillier.set_workers(None)


def _data(n: int = 40) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    xg = rng.normal(size=(n, 2)) * [1.0, 3.0] + [0.5, -2.0]
    xhs = {h: rng.normal(size=(n, m)) * 2.0 + 1.0 for h, m in HOST_WIDTHS.items()}
    z = xg @ [1.0, -0.3] + sum(x @ rng.normal(size=x.shape[1]) for x in xhs.values())
    y = (z + rng.normal(size=n) > np.median(z)).astype(np.int64)
    return xg, y, xhs


@dataclass
class Run:
    hub: MemoryHub
    results: dict[str, Any]
    hosts: list[str]
    arbiter: str | None
    keys: list[PaillierPrivateKey]


def _train(hosts: list[str], arbiter: str | None, cfg: HeteroLRConfig = CFG) -> Run:
    xg, y, xhs = _data()
    keys: list[PaillierPrivateKey] = []
    real = hetero_lr_protocol.generate_paillier_keypair

    def capture(bits: int, *, allow_unsafe_key_size: bool = False) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
        pk, sk = real(bits, allow_unsafe_key_size=allow_unsafe_key_size)
        keys.append(sk)
        return pk, sk

    parties = ["guest", *hosts, *([arbiter] if arbiter else [])]
    hub = MemoryHub(parties)
    fns: dict[str, Any] = {"guest": lambda ch: HeteroLRGuest(cfg, ch, hosts=hosts, arbiter=arbiter).fit(xg, y)}
    for h in hosts:
        fns[h] = lambda ch, h=h: HeteroLRHost(cfg, ch, guest="guest", arbiter=arbiter).fit(xhs[h])
    if arbiter:
        fns[arbiter] = lambda ch: HeteroLRArbiter(cfg, ch, guest="guest", hosts=hosts).fit()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hetero_lr_protocol, "generate_paillier_keypair", capture)
        results = hub.run(fns)
    return Run(hub, results, hosts, arbiter, keys)


CASES = {
    "two_party-1host": (["h1"], None),
    "two_party-2hosts": (["h1", "h2"], None),
    "arbiter-1host": (["h1"], "arb"),
    "arbiter-2hosts": (["h1", "h2"], "arb"),
}


@pytest.fixture(scope="module", params=list(CASES))
def run(request: pytest.FixtureRequest) -> Run:
    hosts, arbiter = CASES[request.param]
    paillier.set_workers(1)
    return _train(hosts, arbiter)


# -- correctness ------------------------------------------------------------------------------
def test_weights_match_the_plaintext_reference(run: Run) -> None:
    xg, y, xhs = _data()
    ref = reference_fit(xg, y, [xhs[h] for h in run.hosts], CFG)
    guest = run.results["guest"]
    np.testing.assert_allclose(guest.coef_, ref.guest_coef, atol=1e-9)
    assert guest.intercept_ == pytest.approx(ref.intercept, abs=1e-9)
    for h, w in zip(run.hosts, ref.host_coefs, strict=True):
        np.testing.assert_allclose(run.results[h].coef_, w, atol=1e-9)
        assert run.results[h].coef_.shape == (HOST_WIDTHS[h],)
    # the Taylor loss, decrypted by whoever holds the key, matches the reference's too
    holder = run.results[run.arbiter] if run.arbiter else guest
    np.testing.assert_allclose(holder.loss_history_, ref.loss_history, atol=1e-9)
    assert len(ref.loss_history) == CFG.max_iter
    assert ref.loss_history[-1] < ref.loss_history[0]
    assert guest.n_iter_ == CFG.max_iter


def test_converges_early_on_loss_change() -> None:
    xg, y, xhs = _data()
    cfg = HeteroLRConfig(**{**CFG.to_dict(), "tol": 0.05, "max_iter": 10})  # type: ignore[arg-type]
    ref = reference_fit(xg, y, [xhs["h1"]], cfg)
    assert ref.converged and ref.n_iter < 10
    fed = _train(["h1"], None, cfg)
    assert fed.results["guest"].converged_ and fed.results["h1"].converged_
    assert fed.results["guest"].n_iter_ == fed.results["h1"].n_iter_ == ref.n_iter
    np.testing.assert_allclose(fed.results["h1"].coef_, ref.host_coefs[0], atol=1e-9)


def _predict(guest: HeteroLRGuest, hosts: dict[str, HeteroLRHost], xg: np.ndarray, xhs: dict[str, np.ndarray]) -> Any:
    hub = MemoryHub(["guest", *hosts])
    fns: dict[str, Any] = {"guest": lambda ch: HeteroLRGuest.from_dict(guest.to_dict(), ch).predict_proba(xg)}
    for h, model in hosts.items():
        data = json.loads(json.dumps(model.to_dict()))  # JSON-safe round trip
        fns[h] = lambda ch, h=h, data=data: HeteroLRHost.from_dict(data, ch).serve_predict(xhs[h])
    return hub.run(fns)["guest"], hub


def test_model_round_trip_and_federated_prediction(run: Run) -> None:
    xg, y, xhs = _data()
    guest = run.results["guest"]
    hosts = {h: run.results[h] for h in run.hosts}
    proba, hub = _predict(guest, hosts, xg, xhs)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    z = with_intercept(Scaler.fit(xg).transform(xg, "g")) @ np.r_[guest.coef_, guest.intercept_]
    for h, model in hosts.items():
        z = z + Scaler.fit(xhs[h]).transform(xhs[h], h) @ model.coef_
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), atol=1e-9)
    # with two hosts the guest gets each host's scores under cancelling masks, never the scores themselves
    if len(hosts) > 1:
        view = _view(hub, "guest", [])
        for h, model in hosts.items():
            own = Scaler.fit(xhs[h]).transform(xhs[h], h) @ model.coef_
            assert not _leaks(view, own, CFG.frac_bits)
    ch = MemoryHub(["guest", *hosts]).channel("guest")
    stored = json.loads(json.dumps(guest.to_dict()))
    assert HeteroLRGuest.from_dict(stored, ch).to_dict() == guest.to_dict()
    for h, model in hosts.items():
        stored = json.loads(json.dumps(model.to_dict()))
        assert HeteroLRHost.from_dict(stored, MemoryHub(["guest", h]).channel(h)).to_dict() == model.to_dict()


def test_prediction_refuses_a_model_of_another_training(run: Run) -> None:
    xg, _, xhs = _data()
    data = {**run.results["guest"].to_dict(), "model_id": "0" * 32, "hosts": ["h1"]}
    hub = MemoryHub(["guest", "h1"])
    with pytest.raises(ConfigError, match="model"):
        hub.run(
            {
                "guest": lambda ch: HeteroLRGuest.from_dict(data, ch).predict_proba(xg),
                "h1": lambda ch: HeteroLRHost.from_dict(run.results["h1"].to_dict(), ch).serve_predict(xhs["h1"]),
            }
        )


def test_breast_cancer_joint_model_beats_guest_alone_and_nears_sklearn() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    g_cols = [1, 4, 8, 9, 11]  # texture, smoothness, symmetry, fractal dimension, texture error
    h_cols = [c for c in range(x.shape[1]) if c not in g_cols]
    cfg = HeteroLRConfig(
        key_bits=1024, allow_unsafe_key_size=True, batch_size=128, max_iter=2, learning_rate=0.3, convergence="none"
    )
    hub = MemoryHub(["guest", "bank", "arb"])
    res = hub.run(
        {
            "guest": lambda ch: HeteroLRGuest(cfg, ch, hosts=["bank"], arbiter="arb").fit(xtr[:, g_cols], ytr),
            "bank": lambda ch: HeteroLRHost(cfg, ch, guest="guest", arbiter="arb").fit(xtr[:, h_cols]),
            "arb": lambda ch: HeteroLRArbiter(cfg, ch, guest="guest", hosts=["bank"]).fit(),
        }
    )
    proba, _ = _predict(res["guest"], {"bank": res["bank"]}, xte[:, g_cols], {"bank": xte[:, h_cols]})
    auc_joint = roc_auc_score(yte, proba[:, 1])

    solo = reference_fit(xtr[:, g_cols], ytr, [], cfg)
    sg = Scaler.fit(xtr[:, g_cols])
    auc_guest = roc_auc_score(yte, sg.transform(xte[:, g_cols], "g") @ solo.guest_coef)
    scaler = StandardScaler().fit(xtr)
    sk = LogisticRegression(max_iter=1000).fit(scaler.transform(xtr), ytr)
    auc_sklearn = roc_auc_score(yte, sk.decision_function(scaler.transform(xte)))
    assert auc_joint > auc_guest + 0.05, (auc_joint, auc_guest)
    assert auc_joint > auc_sklearn - 0.02, (auc_joint, auc_sklearn)


# -- leakage ----------------------------------------------------------------------------------
@dataclass
class View:
    ints: list[int]
    floats: list[float]
    plain_arrays: int  # numeric (non big-int) arrays received: would carry labels or features


def _view(hub: MemoryHub, party: str, keys: list[PaillierPrivateKey]) -> View:
    """Everything ``party`` received, with every ciphertext under its own key decrypted."""
    owned = {sk.public_key.fingerprint: sk for sk in keys if _owner(hub, sk.public_key) == party}
    known = {}
    for _src, _dst, tag, data in hub.log:
        if tag.endswith("/key"):
            pk = PaillierPublicKey.from_wire(decode(data), allow_unsafe_key_size=True)
            known[pk.fingerprint] = pk
    view = View([], [], 0)

    def walk(v: object) -> None:
        if isinstance(v, WireCiphertexts):
            pk = known[v.fingerprint]  # every ciphertext is under a key that was announced
            width = pk.ciphertext_bytes
            cts = [int.from_bytes(v.data[i : i + width], "big") for i in range(0, len(v.data), width)]
            assert cts and all(1 <= c < pk.nsquare for c in cts)
            ev = EncryptedVector.from_wire(pk, v)
            if v.fingerprint in owned:
                view.ints.extend(int(m) for m in owned[v.fingerprint].decrypt_ints(ev))
        elif isinstance(v, bool | str | bytes) or v is None:
            return
        elif isinstance(v, int):
            view.ints.append(v)
        elif isinstance(v, float):
            view.floats.append(v)
        elif isinstance(v, np.ndarray):
            if v.dtype == object:
                view.ints.extend(int(x) for x in v.reshape(-1))
            else:
                view.plain_arrays += 1
                view.floats.extend(float(x) for x in v.reshape(-1))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif is_dataclass(v):
            for f in fields(v):
                walk(getattr(v, f.name))
        else:
            raise AssertionError(f"unexpected value {type(v)} on the wire")

    for _src, dst, _tag, data in hub.log:
        if dst == party:
            walk(decode(data))
    return view


def _owner(hub: MemoryHub, pk: PaillierPublicKey) -> str:
    for src, _dst, tag, data in hub.log:
        if tag.endswith("/key") and decode(data) == pk.to_wire():
            return src
    raise AssertionError("key never announced")


def _leaks(view: View, secrets: np.ndarray, frac_bits: int) -> list[float]:
    """Secret values that appear in the view, as floats or as fixed point at scale f, 2f or 3f."""
    s = np.sort(np.unique(np.abs(np.asarray(secrets, dtype=np.float64).reshape(-1))))
    s = s[s >= 1e-4]
    seen = [abs(x) for x in view.floats]
    for v in view.ints:
        for k in (1, 2, 3):
            x = abs(v) / float(1 << (k * frac_bits)) if abs(v).bit_length() < k * frac_bits + 40 else np.inf
            if 1e-4 <= x < 1e9:
                seen.append(x)
    found = []
    for x in seen:
        i = int(np.searchsorted(s, x))
        for j in (i - 1, i):
            if 0 <= j < s.size and abs(s[j] - x) <= 1e-8 + 1e-9 * x:
                found.append(x)
    return found


def _secrets(hosts: list[str], cfg: HeteroLRConfig = CFG) -> dict[str, np.ndarray]:
    """Per party, every value of its own it must keep: features, residuals, scores, gradients, weights per batch."""
    xg, y, xhs = _data()
    n = len(y)
    xgs = with_intercept(Scaler.fit(xg).transform(xg, "g"))
    xhss = {h: Scaler.fit(xhs[h]).transform(xhs[h], h) for h in hosts}
    wg = np.zeros(xgs.shape[1])
    wh = {h: np.zeros(xhss[h].shape[1]) for h in hosts}
    out: dict[str, list[np.ndarray]] = {"guest": [xg, xgs], **{h: [xhs[h], xhss[h]] for h in hosts}}
    penal = np.r_[np.ones(xgs.shape[1] - 1), 0.0]
    for epoch in range(cfg.max_iter):
        lr = cfg.learning_rate_at(epoch)
        for rows in epoch_batches(n, cfg.batch_size, cfg.seed, epoch):
            uh = {h: xhss[h][rows] @ wh[h] for h in hosts}
            z = xgs[rows] @ wg + sum(uh.values())
            d = 0.25 * z + 0.5 - y[rows]
            gg = xgs[rows].T @ d / rows.size + cfg.alpha * penal * wg
            out["guest"] += [d, 4 * d, z, xgs[rows] @ wg, gg, xgs[rows].T @ (4 * d), wg]
            wg = wg - lr * gg
            for h in hosts:
                gh = xhss[h][rows].T @ d / rows.size + cfg.alpha * wh[h]
                out[h] += [uh[h], sum(uh.values()), gh, xhss[h][rows].T @ (4 * d), wh[h]]
                wh[h] = wh[h] - lr * gh
    out["guest"].append(wg)
    for h in hosts:
        out[h].append(wh[h])
    ref = reference_fit(xg, y, [xhs[h] for h in hosts], cfg)
    np.testing.assert_allclose(wg[:-1], ref.guest_coef, atol=1e-12)  # the trace is the reference algorithm
    return {p: np.concatenate([np.ravel(a) for a in arrays]) for p, arrays in out.items()}


def test_leakage_checker_finds_a_planted_value(run: Run) -> None:
    secrets = _secrets(run.hosts)
    planted = View([int(v) for v in fixed(secrets["h1"][-40:], 2 * CFG.frac_bits)], [], 0)
    assert len(_leaks(planted, secrets["h1"], CFG.frac_bits)) >= 10
    some_guest_value = float(secrets["guest"][np.argmax(np.abs(secrets["guest"]))])
    assert _leaks(View([], [some_guest_value], 0), secrets["guest"], CFG.frac_bits)


def test_leakage_check_catches_a_protocol_without_masks() -> None:
    def no_mask(count: int, bits: int) -> np.ndarray:
        return np.zeros(count, dtype=np.int64).astype(object)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hetero_lr_protocol, "random_mask", no_mask)
        unmasked = _train(["h1"], None)
    secrets = _secrets(["h1"])
    assert _leaks(_view(unmasked.hub, "guest", unmasked.keys), secrets["h1"], CFG.frac_bits)
    assert _leaks(_view(unmasked.hub, "h1", unmasked.keys), secrets["h1"], CFG.frac_bits)  # its final weights


def test_no_party_sees_another_partys_values(run: Run) -> None:
    secrets = _secrets(run.hosts)
    parties = ["guest", *run.hosts, *([run.arbiter] if run.arbiter else [])]
    for party in parties:
        view = _view(run.hub, party, run.keys)
        assert view.plain_arrays == 0, f"{party} received a plain numeric array"
        assert not view.floats, f"{party} received floats"
        assert len(view.ints) > 0
        for owner, values in secrets.items():
            if owner == party and party == "guest":
                continue  # the guest learns its own values, of course
            # a host must not even see its own gradients, residuals or weights in the clear
            assert not _leaks(view, values, CFG.frac_bits), f"{party} sees values of {owner}"


def test_guest_needs_a_row_aligned_host() -> None:
    xg, y, xhs = _data()
    hub = MemoryHub(["guest", "h1"])
    with pytest.raises(DataError, match="rows"):
        hub.run(
            {
                "guest": lambda ch: HeteroLRGuest(CFG, ch, hosts=["h1"]).fit(xg, y),
                "h1": lambda ch: HeteroLRHost(CFG, ch, guest="guest").fit(xhs["h1"][:-3]),
            }
        )


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (lambda y: y + 1, "binary labels"),
        (lambda y: np.zeros_like(y), "both classes"),
        (lambda y: y[:-1], "rows"),
        (lambda y: y.astype(float) * 0.5, "binary labels"),
    ],
)
def test_bad_labels_are_refused(labels: Any, match: str) -> None:
    xg, y, xhs = _data()
    hub = MemoryHub(["guest", "h1"])
    with pytest.raises(DataError, match=match):
        hub.run(
            {
                "guest": lambda ch: HeteroLRGuest(CFG, ch, hosts=["h1"]).fit(xg, labels(y)),
                "h1": lambda ch: HeteroLRHost(CFG, ch, guest="guest").fit(xhs["h1"]),
            },
            timeout=30,
        )


def test_parties_must_agree_on_config_and_mode() -> None:
    xg, y, xhs = _data()
    other = HeteroLRConfig(**{**CFG.to_dict(), "learning_rate": 0.1})  # type: ignore[arg-type]
    hub = MemoryHub(["guest", "h1"])
    with pytest.raises(ConfigError, match="different HeteroLRConfig"):
        hub.run(
            {
                "guest": lambda ch: HeteroLRGuest(CFG, ch, hosts=["h1"]).fit(xg, y),
                "h1": lambda ch: HeteroLRHost(other, ch, guest="guest").fit(xhs["h1"]),
            }
        )
    hub = MemoryHub(["guest", "h1", "arb"])
    with pytest.raises(ConfigError, match="mode"):
        hub.run(
            {
                "guest": lambda ch: HeteroLRGuest(CFG, ch, hosts=["h1"], arbiter="arb").fit(xg, y),
                "h1": lambda ch: HeteroLRHost(CFG, ch, guest="guest").fit(xhs["h1"]),
                "arb": lambda ch: HeteroLRArbiter(CFG, ch, guest="guest", hosts=["h1"]).fit(),
            }
        )


def test_bad_features_and_names_are_refused() -> None:
    ch = MemoryHub(["guest", "h1"]).channel("guest")
    model = HeteroLRGuest(CFG, ch, hosts=["h1"])
    with pytest.raises(DataError, match="NaN"):
        model.fit([[1.0, np.nan], [2.0, 1.0], [0.0, 0.0]], [0, 1, 0])
    with pytest.raises(DataError, match="2-D"):
        model.fit([1.0, 2.0, 3.0], [0, 1, 0])
    with pytest.raises(ConfigError, match="not a party"):
        HeteroLRGuest(CFG, ch, hosts=["h9"])
    with pytest.raises(ConfigError, match="at least one host"):
        HeteroLRGuest(CFG, ch, hosts=[])
    with pytest.raises(ConfigError, match="twice"):
        HeteroLRGuest(CFG, ch, hosts=["h1", "h1"])
    with pytest.raises(ConfigError, match="not fitted"):
        model.predict_proba([[1.0, 2.0]])


@pytest.mark.parametrize(
    "change",
    [
        {"learning_rate": 0.0},
        {"batch_size": 0},
        {"max_iter": 0},
        {"alpha": -1.0},
        {"lr_schedule": "cosine"},
        {"convergence": "gradient"},
        {"key_bits": 1024, "allow_unsafe_key_size": False},
        {"key_bits": 512, "frac_bits": 64, "mask_bits": 128},
        {"tol": float("nan")},
    ],
)
def test_config_validation(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HeteroLRConfig.from_dict({**CFG.to_dict(), **change})


def test_config_round_trip_and_schedule() -> None:
    assert HeteroLRConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ConfigError, match="unknown"):
        HeteroLRConfig.from_dict({"epochs": 3})
    assert CFG.learning_rate_at(2) == pytest.approx(0.3 / 2.0)
    sqrt = HeteroLRConfig(lr_schedule="sqrt_decay", decay=3.0, learning_rate=1.0)
    assert sqrt.learning_rate_at(1) == pytest.approx(0.5)
    batches = epoch_batches(10, 4, seed=0, epoch=0)
    assert [len(b) for b in batches] == [4, 3, 3]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert not np.array_equal(np.concatenate(batches), np.concatenate(epoch_batches(10, 4, seed=0, epoch=1)))


def test_model_dicts_are_checked() -> None:
    ch = MemoryHub(["guest", "h1"]).channel("h1")
    with pytest.raises(ConfigError, match="format"):
        HeteroLRHost.from_dict({"format": "sklearn"}, ch)
    with pytest.raises(ConfigError, match="version"):
        HeteroLRHost.from_dict({"format": "jointly.hetero_lr.host", "version": 99}, ch)
    with pytest.raises(ConfigError, match="malformed"):
        HeteroLRHost.from_dict({"format": "jointly.hetero_lr.host", "version": 1, "config": CFG.to_dict()}, ch)
