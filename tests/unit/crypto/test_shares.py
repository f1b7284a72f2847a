"""The share value type: fixed-point codec, PRG, splitting, local operators and the refusal to branch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from jointly.crypto.shares import (
    SecretBranchError,
    SharedTensor,
    decode_fixed,
    encode_fixed,
    prg_words,
    random_words,
    split,
)
from jointly.errors import ConfigError

F = 16


@dataclass
class LocalEngine:
    """Just enough of an engine for local operations (interactive ones are not called here)."""

    party_index: int
    frac_bits: int = F

    def mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        raise AssertionError("not local")

    matmul = mul

    def truncate(self, x: SharedTensor, bits: int) -> SharedTensor:
        raise AssertionError("not local")

    def ltz(self, x: SharedTensor) -> SharedTensor:
        raise AssertionError("not local")


ENGINES = (LocalEngine(0), LocalEngine(1))


def shared(values: np.ndarray) -> tuple[SharedTensor, SharedTensor]:
    s0, s1 = split(encode_fixed(values, F))
    return SharedTensor(ENGINES[0], s0, F), SharedTensor(ENGINES[1], s1, F)


def opened(pair: tuple[SharedTensor, SharedTensor]) -> np.ndarray:
    a, b = pair
    assert a.frac_bits == b.frac_bits
    return decode_fixed(a.share + b.share, a.frac_bits)


def test_encoding_round_trip_with_negative_and_large_values() -> None:
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(size=1000) * 1e6, [-(2.0**40), 2.0**40, 0.0, -1.5]])
    back = decode_fixed(encode_fixed(v, F), F)
    assert np.abs(back - v).max() <= 2.0 ** -(F + 1)
    with pytest.raises(ConfigError):
        encode_fixed([2.0**47], F)
    with pytest.raises(ConfigError):
        encode_fixed([np.nan], F)


def test_prg_is_deterministic_per_seed_and_nonce() -> None:
    seed = bytes(range(32))
    assert np.array_equal(prg_words(seed, 3, 100), prg_words(seed, 3, 100))
    assert not np.array_equal(prg_words(seed, 3, 100), prg_words(seed, 4, 100))
    assert np.array_equal(prg_words(seed, 3, 100)[:10], prg_words(seed, 3, 10))
    with pytest.raises(ConfigError):
        prg_words(b"short", 0, 1)


def test_random_words_are_balanced_bits() -> None:
    words = random_words(20000)
    bits = np.unpackbits(words.view(np.uint8))
    # 1.28M fair bits: the count of ones is within 5 standard deviations of half
    assert abs(bits.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
    counts = np.bincount(words.view(np.uint8), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_shares_of_a_constant_look_uniform() -> None:
    s0, s1 = split(np.full(20000, 7, dtype=np.uint64))
    assert np.array_equal(s0 + s1, np.full(20000, 7, dtype=np.uint64))
    for s in (s0, s1):
        assert stats.chisquare(np.bincount(s.view(np.uint8), minlength=256)).pvalue > 1e-4


def test_local_linear_operations_match_numpy() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 5)) * 100, rng.normal(size=(4, 5)) * 1e4
    xs, ys = shared(x), shared(y)
    tol = 2.0**-F
    assert np.abs(opened((xs[0] + ys[0], xs[1] + ys[1])) - (x + y)).max() <= tol
    assert np.abs(opened((xs[0] - ys[0], xs[1] - ys[1])) - (x - y)).max() <= tol
    assert np.abs(opened((-xs[0], -xs[1])) + x).max() <= tol
    assert np.abs(opened((xs[0] + 2.5, xs[1] + 2.5)) - (x + 2.5)).max() <= tol
    assert np.abs(opened((10 - xs[0], 10 - xs[1])) - (10 - x)).max() <= tol
    assert np.abs(opened((xs[0] * -3, xs[1] * -3)) - (x * -3)).max() <= 3 * tol
    ints = np.arange(20).reshape(5, 4) - 10
    assert np.abs(opened((xs[0] @ ints, xs[1] @ ints)) - x @ ints).max() <= 40 * tol
    assert np.abs(opened((xs[0].sum(axis=0), xs[1].sum(axis=0))) - x.sum(axis=0)).max() <= 4 * tol
    assert np.abs(opened((xs[0].T.reshape(-1), xs[1].T.reshape(-1))) - x.T.reshape(-1)).max() <= tol
    assert xs[0][1:3].shape == (2, 5)


def test_rescaled_keeps_the_value() -> None:
    x = np.array([-3.25, 7.5])
    xs = shared(x)
    up = (xs[0].rescaled(F + 4), xs[1].rescaled(F + 4))
    assert up[0].frac_bits == F + 4
    assert np.array_equal(opened(up), x)
    with pytest.raises(ValueError):
        xs[0].rescaled(F - 1)


def test_bool_refuses_to_branch_on_a_secret() -> None:
    xs, _ = shared(np.array([1.0]))
    with pytest.raises(SecretBranchError):
        bool(xs)
    with pytest.raises(SecretBranchError):
        if xs:
            pass
    with pytest.raises(TypeError):
        hash(xs)


def test_share_type_is_checked() -> None:
    with pytest.raises(TypeError):
        SharedTensor(LocalEngine(0), np.zeros(3, dtype=np.int64), F)
