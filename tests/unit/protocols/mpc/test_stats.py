"""Joint statistics against numpy, horizontal and vertical, and what each party gets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from jointly.channel.codec import decode
from jointly.channel.memory import MemoryHub
from jointly.crypto.shares import encode_fixed
from jointly.errors import ConfigError, DataError
from jointly.protocols.mpc import MpcRoles, StatRequest, joint_statistic

PARTIES = ("bank", "telco", "insurer", "regulator", "dealer")
ROLES = MpcRoles(data=("bank", "telco", "insurer"), compute=("bank", "telco"), result=("regulator",), dealer="dealer")
RNG = np.random.default_rng(11)
ROWS = {"bank": 120, "telco": 80, "insurer": 50}
XH = {p: RNG.normal(-3, 4, n) for p, n in ROWS.items()}
YH = {p: 0.6 * XH[p] + RNG.normal(0, 2, n) for p, n in ROWS.items()}
X, Y = np.concatenate(list(XH.values())), np.concatenate(list(YH.values()))
N = 150  # vertical: aligned rows, one column per party
COLS = {"bank": RNG.normal(50, 30, N), "telco": RNG.normal(-20, 10, N), "insurer": RNG.uniform(-5, 5, N)}
BINS = (-40.0, -5.0, 0.0, 2.5, 10.0, 120.0)
ULP = 2.0**-16


def run(req: StatRequest, inputs: dict[str, dict[str, np.ndarray]], roles: MpcRoles = ROLES) -> tuple[dict, MemoryHub]:
    hub = MemoryHub(PARTIES)

    def party(name: str) -> Any:
        return lambda ch: joint_statistic(ch, roles, req, inputs.get(name))

    return hub.run({p: party(p) for p in PARTIES}, timeout=60), hub


def reference(op: str, v: np.ndarray, w: np.ndarray | None = None) -> Any:
    return {
        "sum": lambda: v.sum(),
        "count": lambda: len(v),
        "mean": lambda: v.mean(),
        "variance": lambda: v.var(),
        "min": lambda: v.min(),
        "max": lambda: v.max(),
        "histogram": lambda: np.histogram(v, bins=BINS)[0].tolist(),
        "pearson": lambda: np.corrcoef(v, w)[0, 1],
        "quantile": lambda: np.quantile(v, 0.75, method="inverted_cdf"),
    }[op]()


# absolute tolerances (fixed point with 16 fractional bits; see stats.py)
TOL = {"sum": 300 * ULP, "mean": 1e-4, "variance": 2e-3, "min": ULP, "max": ULP, "pearson": 1e-3, "quantile": 1e-3}
OPS = ["sum", "count", "mean", "variance", "min", "max", "histogram", "pearson", "quantile"]


@pytest.mark.parametrize("op", OPS)
def test_horizontal(op: str) -> None:
    cols = ("x", "y") if op == "pearson" else ("x",)
    req = StatRequest(op=op, layout="horizontal", columns=cols, bins=BINS, quantile=0.75)
    out, _ = run(req, {p: {"x": XH[p], "y": YH[p]} for p in ROWS})
    assert all(out[p] is None for p in PARTIES if p != "regulator")
    got, ref = out["regulator"]["value"], reference(op, X, Y)
    if op in ("count", "histogram"):
        assert got == ref
    else:
        assert abs(got - ref) <= TOL[op]


@pytest.mark.parametrize("op", OPS)
def test_vertical(op: str) -> None:
    if op == "pearson":
        cols, v, w = ("bank_x", "telco_y"), COLS["bank"], COLS["telco"]
    else:
        cols, v, w = ("bank_x", "telco_y", "insurer_z"), COLS["bank"] + COLS["telco"] + COLS["insurer"], None
    names = {"bank": "bank_x", "telco": "telco_y", "insurer": "insurer_z"}
    req = StatRequest(op=op, layout="vertical", columns=cols, bins=BINS, quantile=0.75)
    out, _ = run(req, {p: {names[p]: COLS[p]} for p in COLS})
    got, ref = out["regulator"]["value"], reference(op, v, w)
    if op in ("count", "histogram"):
        assert got == ref
    else:
        assert abs(got - ref) <= TOL[op] * max(1.0, abs(ref) / 100)


def test_paillier_mode_mean_and_pearson() -> None:
    roles = MpcRoles(
        data=("bank", "telco"),
        compute=("bank", "telco"),
        result=("bank",),
        paillier_bits=512,
        allow_unsafe_key_size=True,
    )
    hub_inputs = {"bank": {"x": COLS["bank"]}, "telco": {"y": COLS["telco"]}}
    out, hub = run(StatRequest(op="pearson", layout="vertical", columns=("x", "y")), hub_inputs, roles)
    assert abs(out["bank"]["value"] - np.corrcoef(COLS["bank"], COLS["telco"])[0, 1]) <= 1e-3
    assert not any(src == "dealer" or dst == "dealer" for src, dst, _, _ in hub.log)
    req = StatRequest(op="mean", layout="horizontal", columns=("x",))
    out, _ = run(req, {"bank": {"x": XH["bank"]}, "telco": {"x": XH["telco"]}}, roles)
    assert abs(out["bank"]["value"] - np.concatenate([XH["bank"], XH["telco"]]).mean()) <= 1e-4


def test_result_party_receives_only_the_result() -> None:
    req = StatRequest(op="pearson", layout="horizontal", columns=("x", "y"))
    out, hub = run(req, {p: {"x": XH[p], "y": YH[p]} for p in ROWS})
    to_result = [(src, tag, decode(data)) for src, dst, tag, data in hub.log if dst == "regulator"]
    assert abs(out["regulator"]["value"] - np.corrcoef(X, Y)[0, 1]) <= 1e-3
    assert [p for p in PARTIES if out[p] is not None] == ["regulator"]
    # exactly one result share per compute party, nothing else
    payload = [(src, v) for src, tag, v in to_result if tag.endswith("out/result")]
    assert sorted(src for src, _ in payload) == ["bank", "telco"]
    assert all(isinstance(v, np.ndarray) and v.shape == (1,) for _, v in payload)
    assert len(to_result) == len(payload)
    meta = [decode(data) for _, dst, tag, data in hub.log if tag.endswith("meta")]
    assert meta and all(v[1] == 0 for v in meta)  # no row counts in horizontal layout
    # a pure data party (insurer) receives nothing at all
    assert not any(dst == "insurer" for _, dst, _, _ in hub.log)


def test_data_party_shares_reveal_nothing() -> None:
    """What the insurer (data only) sends the compute parties is uniform and never its encoded values."""
    names = {"bank": "bank_x", "telco": "telco_y", "insurer": "insurer_z"}
    req = StatRequest(op="sum", layout="vertical", columns=("insurer_z",))
    values = np.round(COLS["insurer"], 1)
    inputs = {p: {names[p]: COLS[p]} for p in COLS}
    inputs["insurer"] = {"insurer_z": values}
    out, hub = run(req, inputs)
    assert abs(out["regulator"]["value"] - values.sum()) <= N * ULP
    sent = {dst: decode(d) for src, dst, tag, d in hub.log if src == "insurer" and "in/" in tag}
    assert sorted(sent) == ["bank", "telco"]
    # compute[0] gets a 32-byte PRG seed (and the shape), compute[1] the values minus the PRG output
    seed, shape = sent["bank"]
    assert isinstance(seed, bytes) and len(seed) == 32 and shape == [N]
    masked = sent["telco"]
    assert not np.isin(encode_fixed(values, 16), masked).any()
    bits = np.unpackbits(masked.view(np.uint8)).reshape(-1, 64)
    assert np.abs(bits.mean(axis=0) - 0.5).max() < 6 * 0.5 / np.sqrt(bits.shape[0])
    assert stats.chisquare(np.bincount(masked.view(np.uint8), minlength=256)).pvalue > 1e-4


def test_bad_requests_and_inputs() -> None:
    with pytest.raises(ConfigError):
        StatRequest(op="median", layout="horizontal", columns=("x",))
    with pytest.raises(ConfigError):
        StatRequest(op="pearson", layout="vertical", columns=("x",))
    with pytest.raises(ConfigError):
        StatRequest(op="histogram", layout="vertical", columns=("x",), bins=(3.0, 1.0))
    with pytest.raises(ConfigError):
        MpcRoles(data=("a",), compute=("a", "b", "c"), result=("a",))
    with pytest.raises(ConfigError):
        MpcRoles(data=("a",), compute=("a", "b"), result=("a",), dealer="a")
    req = StatRequest(op="sum", layout="vertical", columns=("bank_x", "telco_y"))
    with pytest.raises(DataError):
        run(req, {"bank": {"bank_x": COLS["bank"]}, "telco": {"telco_y": COLS["telco"][:10]}, "insurer": {}})
