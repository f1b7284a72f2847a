"""The two-party engine against plain numpy, triples from both sources, and what a compute party sees."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jointly.channel.codec import decode
from jointly.crypto.shares import SecretBranchError, random_words
from jointly.protocols.mpc import compare, numeric
from jointly.protocols.mpc.engine import TwoPartyEngine

from .helpers import F, run_pair, shares_of, tensor

ULP = 2.0**-F
RNG = np.random.default_rng(7)
# negative, tiny and large values (products stay below 2**(62 - 2F) = 2**30)
X = np.concatenate([RNG.normal(size=60) * 30, [-1000.0, 999.5, -(2.0**-10), 0.0, 2.0**14, -(2.0**14)]])
Y = np.concatenate([RNG.normal(size=60) * 5, [3.0, -7.25, 2.0**10, 5.0, 1.5, -0.5]])
XS, YS = shares_of(X), shares_of(Y)
ENC = 2.0 ** -(F + 1)  # encoding error of one input


@pytest.mark.parametrize("mode", ["dealer", "paillier"])
def test_mul_matmul_and_linear_ops_match_numpy(mode: str) -> None:
    def fn(eng: TwoPartyEngine, i: int) -> dict[str, np.ndarray]:
        x, y = tensor(eng, XS), tensor(eng, YS)
        return {
            "mul": eng.reveal(x * y),
            "affine": eng.reveal(x * 0.75 - y * 3 + 1.5),
            "matmul": eng.reveal(x[:60].reshape(6, 10) @ y[:60].reshape(10, 6)),
            "dot": eng.reveal(x @ y),
        }

    out = run_pair(mode, fn)[0]["p0"]
    # |x e_y| + |y e_x| from encoding plus one unit of truncation
    bound = (np.abs(X) + np.abs(Y)) * ENC + 2 * ULP
    assert (np.abs(out["mul"] - X * Y) <= bound).all()
    assert np.abs(out["affine"] - (0.75 * X - 3 * Y + 1.5)).max() <= 8 * ULP
    ref = X[:60].reshape(6, 10) @ Y[:60].reshape(10, 6)
    assert np.abs(out["matmul"] - ref).max() <= 10 * (np.abs(X).max() + np.abs(Y).max()) * ENC + 2 * ULP
    assert abs(float(out["dot"]) - X @ Y) <= len(X) * (np.abs(X) + np.abs(Y)).max() * ENC + 2 * ULP


@pytest.mark.parametrize("mode", ["dealer", "paillier"])
def test_triples_multiply(mode: str) -> None:
    def fn(eng: TwoPartyEngine, i: int) -> tuple[np.ndarray, ...]:
        src = eng._source
        return (*src.arith(50), *src.bits(1), *src.matmul(3, 4, 2))

    res = run_pair(mode, fn)[0]
    a0, b0, c0, x0, y0, z0, m0, n0, o0 = res["p0"]
    a1, b1, c1, x1, y1, z1, m1, n1, o1 = res["p1"]
    assert np.array_equal((a0 + a1) * (b0 + b1), c0 + c1)
    assert np.array_equal((x0 ^ x1) & (y0 ^ y1), z0 ^ z1)
    assert np.array_equal(((m0 + m1).reshape(3, 4) @ (n0 + n1).reshape(4, 2)).reshape(-1), o0 + o1)
    # the operands are random, not fixed
    assert len(np.unique(a0 + a1)) == 50


def test_truncation_with_a_dealer_is_exact_to_one_unit() -> None:
    big = np.concatenate([RNG.integers(-(2**61), 2**61, size=2000), [2**61 - 1, -(2**61), 0, -1, 1]])
    ring = big.astype(np.int64).view(np.uint64)
    from jointly.crypto.shares import split

    pair = split(ring)
    shifts = [1, 16, 40]

    def fn(eng: TwoPartyEngine, i: int) -> list[np.ndarray]:
        x = eng.tensor(pair[i], 45)
        return [eng.open_words([eng.truncate(x, s).share])[0].view(np.int64) for s in shifts]

    out = run_pair("dealer", fn)[0]["p0"]
    for s, got in zip(shifts, out, strict=True):
        diff = got - (big >> s)
        assert set(np.unique(diff)) <= {0, 1}


def test_comparisons_and_relu_are_exact() -> None:
    edge = np.array([0.0, -(2.0**-F), 2.0**-F, 2.0**40, -(2.0**40), 2.0**45, -(2.0**45)])
    vals = np.concatenate([X, edge])
    vs = shares_of(vals)

    def fn(eng: TwoPartyEngine, i: int) -> dict[str, np.ndarray]:
        v, x, y = tensor(eng, vs), tensor(eng, XS), tensor(eng, YS)
        return {
            "ltz": eng.reveal(v < 0),
            "lt": eng.reveal(x < y),
            "ge": eng.reveal(x >= y),
            "gt_pub": eng.reveal(x > 1.5),
            "relu": eng.reveal(compare.relu(x)),
        }

    out = run_pair("dealer", fn)[0]["p0"]
    assert np.array_equal(out["ltz"], (vals < 0).astype(float))
    assert np.array_equal(out["lt"], (X < Y).astype(float))
    assert np.array_equal(out["ge"], (X >= Y).astype(float))
    assert np.array_equal(out["gt_pub"], (X > 1.5).astype(float))
    assert np.abs(out["relu"] - np.maximum(X, 0)).max() <= ULP


def test_comparison_with_paillier_triples() -> None:
    few = shares_of(np.array([0.0, -(2.0**-F)]))

    def fn(eng: TwoPartyEngine, i: int) -> np.ndarray:
        return eng.reveal(tensor(eng, few) < 0)

    assert np.array_equal(run_pair("paillier", fn)[0]["p0"], [0.0, 1.0])


def test_max_argmax_min_and_quantile() -> None:
    def fn(eng: TwoPartyEngine, i: int) -> dict[str, np.ndarray]:
        x = tensor(eng, XS)
        m, idx = compare.argmax(x)
        lo, lidx = compare.argmax(x, smallest=True)
        return {
            "max": eng.reveal(m),
            "argmax": eng.reveal(idx),
            "min": eng.reveal(lo),
            "argmin": eng.reveal(lidx),
            "maximum": eng.reveal(compare.maximum(x, tensor(eng, YS))),
            "q": eng.reveal(compare.quantile(x, 0.3, iterations=26)),
        }

    out = run_pair("dealer", fn)[0]["p0"]
    assert abs(out["max"] - X.max()) <= ENC and int(out["argmax"]) == int(X.argmax())
    assert abs(out["min"] - X.min()) <= ENC and int(out["argmin"]) == int(X.argmin())
    assert np.abs(out["maximum"] - np.maximum(X, Y)).max() <= ENC
    width = (X.max() - X.min()) / 2**26
    true_q = np.quantile(X, 0.3, method="inverted_cdf")
    assert true_q - 4 * ULP <= out["q"] <= true_q + width + 8 * ULP


def test_division_reciprocal_and_rsqrt() -> None:
    pos = np.concatenate([RNG.uniform(0.01, 10, 20), RNG.uniform(10, 1e6, 20), [2.0**-10, 1.0, 2.0**20]])
    num = RNG.normal(size=pos.size) * 100
    ps, ns = shares_of(pos), shares_of(num)

    def fn(eng: TwoPartyEngine, i: int) -> dict[str, np.ndarray]:
        b, a = tensor(eng, ps), tensor(eng, ns)
        return {
            "recip": eng.reveal(numeric.reciprocal(b)),
            "div": eng.reveal(numeric.divide(a, b)),
            "rsqrt": eng.reveal(numeric.rsqrt(b)),
            "sqrt": eng.reveal(numeric.sqrt(b)),
            "divpub": eng.reveal(numeric.div_public(a.sum(), 1_000_003)),
        }

    out = run_pair("dealer", fn)[0]["p0"]

    # a few units of the result's own power of two (relative ~2**-(F-3)), or absolute units when small
    def close(got: np.ndarray, ref: np.ndarray, rel: float) -> bool:
        return bool((np.abs(got - ref) <= rel * np.abs(ref) + 4 * ULP).all())

    assert close(out["recip"], 1 / pos, 2.0 ** -(F - 3))
    assert close(out["div"], num / pos, 2.0 ** -(F - 4))
    assert close(out["rsqrt"], 1 / np.sqrt(pos), 2.0 ** -(F - 3))
    assert close(out["sqrt"], np.sqrt(pos), 2.0 ** -(F - 5))
    assert abs(float(out["divpub"]) - num.sum() / 1_000_003) <= 4 * ULP


def test_compute_party_view_is_uniform_and_hides_inputs() -> None:
    """Everything p1 receives from p0 (and the dealer) are uniform words that never equal an input."""
    n = 4000
    x = np.round(RNG.normal(size=n) * 5, 2)  # low-entropy inputs: easy to spot if they leaked
    xs = shares_of(x)

    def fn(eng: TwoPartyEngine, i: int) -> None:
        v = tensor(eng, xs)
        _ = (v * v) < 3.0

    _, hub = run_pair("dealer", fn)
    got = [decode(data) for src, dst, tag, data in hub.log if dst == "p1" and src == "p0"]
    words = np.concatenate([w for w in got if isinstance(w, np.ndarray)])
    assert words.size > 10 * n
    assert not np.isin(encode_inputs(x), words).any()
    byte_counts = np.bincount(words.view(np.uint8), minlength=256)
    assert stats.chisquare(byte_counts).pvalue > 1e-4
    bits = np.unpackbits(words.view(np.uint8)).reshape(-1, 64)
    # every bit position is balanced (the opened values' top bits would not be if unmasked)
    assert np.abs(bits.mean(axis=0) - 0.5).max() < 6 * 0.5 / np.sqrt(bits.shape[0])
    dealt = [decode(data) for src, dst, tag, data in hub.log if src == "dealer" and tag.endswith(tuple("0123456789"))]
    dealer_words = np.concatenate([w for w in dealt if isinstance(w, np.ndarray)])
    assert stats.chisquare(np.bincount(dealer_words.view(np.uint8), minlength=256)).pvalue > 1e-4


def encode_inputs(x: np.ndarray) -> np.ndarray:
    from jointly.crypto.shares import encode_fixed

    return encode_fixed(x, F)


def test_bool_of_a_comparison_raises() -> None:
    def fn(eng: TwoPartyEngine, i: int) -> str:
        c = tensor(eng, XS) < 0
        try:
            if c[0]:
                return "branched"
        except SecretBranchError:
            return "refused"
        return "branched"

    out = run_pair("dealer", fn)[0]
    assert (out["p0"], out["p1"]) == ("refused", "refused")


def test_malformed_opening_is_a_protocol_violation() -> None:
    from jointly.errors import ProtocolViolation

    def fn(eng: TwoPartyEngine, i: int) -> None:
        if i == 1:
            eng._ch.send(eng.peer, "x0", random_words(3))
            return
        eng.open_words([random_words(5)])

    with pytest.raises(ProtocolViolation):
        run_pair("dealer", fn)
