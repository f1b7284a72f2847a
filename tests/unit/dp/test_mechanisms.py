from __future__ import annotations

import math

import numpy as np
import pytest

from jointly.dp.mechanisms import (
    AdaptiveClipper,
    adaptive_update_noise_multiplier,
    add_gaussian_noise,
    clip_by_global_norm,
    gaussian_noise_like,
    global_l2_norm,
    secure_rng,
)
from jointly.errors import ConfigError


def test_global_norm_is_norm_of_concatenation() -> None:
    arrays = [np.array([3.0, 0.0]), np.array([[4.0]], dtype=np.float32), np.zeros(0)]
    assert global_l2_norm(arrays) == pytest.approx(5.0)


def test_clipping_bounds_the_norm_and_keeps_small_updates() -> None:
    rng = np.random.default_rng(0)
    for scale in (0.01, 1.0, 100.0):
        arrays = [rng.normal(size=(3, 4)) * scale, rng.normal(size=5) * scale]
        clipped, norm = clip_by_global_norm(arrays, 1.5)
        assert norm == pytest.approx(global_l2_norm(arrays))
        assert global_l2_norm(clipped) <= 1.5 + 1e-12
        if norm <= 1.5:
            for a, c in zip(arrays, clipped, strict=True):
                np.testing.assert_array_equal(a, c)
        else:
            assert global_l2_norm(clipped) == pytest.approx(1.5)
            np.testing.assert_allclose(clipped[0] * norm / 1.5, arrays[0])


def test_clipping_refuses_nan_and_bad_norm() -> None:
    with pytest.raises(ConfigError, match="NaN"):
        clip_by_global_norm([np.array([np.nan, 1.0])], 1.0)
    with pytest.raises(ConfigError):
        clip_by_global_norm([np.ones(2)], 0.0)


def test_noise_std_is_right_and_shapes_match() -> None:
    rng = np.random.default_rng(1)
    noise = gaussian_noise_like([np.zeros((200, 100)), np.zeros(30_000)], 2.5, rng)
    assert [n.shape for n in noise] == [(200, 100), (30_000,)]
    flat = np.concatenate([n.ravel() for n in noise])
    # 50k samples: the sample std is within ~1% of 2.5 with overwhelming probability
    assert np.std(flat) == pytest.approx(2.5, rel=0.02)
    assert abs(np.mean(flat)) < 0.05
    out = add_gaussian_noise([np.full(3, 7.0)], 0.0, rng)
    np.testing.assert_array_equal(out[0], np.full(3, 7.0))


def test_secure_rng_is_unpredictable() -> None:
    assert secure_rng().integers(0, 2**63) != secure_rng().integers(0, 2**63)


def test_adaptive_clipper_moves_toward_target_quantile() -> None:
    rng = np.random.default_rng(2)
    clipper = AdaptiveClipper(0.1, target_quantile=0.5, learning_rate=0.2, clipped_count_stddev=0.5)
    for _ in range(300):
        norms = rng.lognormal(mean=math.log(3.0), sigma=0.3, size=50)
        clipper.update(norms, rng)
    assert clipper.clip_norm == pytest.approx(3.0, rel=0.15)  # the median of the norms
    high = AdaptiveClipper(10.0, target_quantile=0.9, learning_rate=0.2, clipped_count_stddev=0.0)
    for _ in range(300):
        high.update(rng.lognormal(mean=math.log(3.0), sigma=0.3, size=50), rng)
    assert high.clip_norm > clipper.clip_norm


def test_adaptive_noise_split() -> None:
    z = 1.0
    z_delta = adaptive_update_noise_multiplier(z, 2.0)
    assert z_delta > z
    assert (z_delta**-2 + (2 * 2.0) ** -2) ** -0.5 == pytest.approx(z)
    with pytest.raises(ConfigError, match="too small"):
        adaptive_update_noise_multiplier(1.0, 0.4)
