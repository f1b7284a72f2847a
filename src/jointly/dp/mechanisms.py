"""Gaussian-mechanism building blocks over lists of numpy float arrays (one array per model tensor).

* :func:`global_l2_norm`, :func:`clip_by_global_norm` -- bound one contribution's L2 sensitivity.
* :func:`gaussian_noise_like`, :func:`add_gaussian_noise` -- the noise ``N(0, std^2)`` per coordinate.
* :func:`secure_rng` -- a numpy ``Generator`` seeded with 256 bits from :mod:`secrets`.  Use it for
  DP noise in production: a seed that an observer can guess lets them subtract the noise.  Seeded
  generators are for tests only.  (numpy's PCG64 is not a cryptographic generator and floating-point
  Gaussian sampling has the known tail/precision weaknesses (Mironov 2012); this is the same level of
  protection as Opacus without ``secure_mode`` and Flower.)
* :class:`AdaptiveClipper` -- Andrew, Thakkar, McMahan, Ramaswamy 2021 ("Differentially Private
  Learning with Adaptive Clipping", arXiv:1905.03871): the clip norm follows a target quantile of
  the update norms by a geometric update driven by a noised count of unclipped updates.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jointly.errors import ConfigError

__all__ = [
    "AdaptiveClipper",
    "adaptive_update_noise_multiplier",
    "add_gaussian_noise",
    "clip_by_global_norm",
    "gaussian_noise_like",
    "global_l2_norm",
    "secure_rng",
]

Arrays = Sequence[np.ndarray]


def secure_rng() -> np.random.Generator:
    """A fresh generator seeded from the operating system's CSPRNG (256 bits via :mod:`secrets`)."""
    return np.random.default_rng(secrets.randbits(256))


def global_l2_norm(arrays: Arrays) -> float:
    """L2 norm of all arrays flattened and concatenated."""
    total = 0.0
    for a in arrays:
        x = np.asarray(a, dtype=np.float64).ravel()
        total += float(np.dot(x, x))
    return math.sqrt(total)


def clip_by_global_norm(arrays: Arrays, clip_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale the arrays so their global L2 norm is at most ``clip_norm``; returns (clipped, original norm).

    Arrays are returned as new float64 arrays (inputs are not modified); non-finite values are refused,
    since a NaN or inf would escape clipping and break the sensitivity bound.
    """
    if not math.isfinite(clip_norm) or clip_norm <= 0:
        raise ConfigError(f"clip_norm must be a positive finite number, got {clip_norm}")
    xs = [np.asarray(a, dtype=np.float64) for a in arrays]
    norm = global_l2_norm(xs)
    if not math.isfinite(norm):
        raise ConfigError("cannot clip an update that contains NaN or infinite values")
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return [x * scale for x in xs], norm


def gaussian_noise_like(arrays: Arrays, std: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Independent ``N(0, std^2)`` noise with the shapes of ``arrays`` (float64)."""
    if not math.isfinite(std) or std < 0:
        raise ConfigError(f"noise std must be a non-negative finite number, got {std}")
    return [rng.normal(0.0, std, size=np.shape(a)) if std > 0 else np.zeros(np.shape(a)) for a in arrays]


def add_gaussian_noise(arrays: Arrays, std: float, rng: np.random.Generator) -> list[np.ndarray]:
    """``arrays + N(0, std^2)`` per coordinate, as new float64 arrays."""
    return [
        np.asarray(a, dtype=np.float64) + n for a, n in zip(arrays, gaussian_noise_like(arrays, std, rng), strict=True)
    ]


def adaptive_update_noise_multiplier(noise_multiplier: float, clipped_count_stddev: float) -> float:
    """Noise multiplier left for the update when part of the privacy goes to the clipped count.

    Andrew et al. 2021, Thm. 1: releasing the update with multiplier ``z_delta`` and the count with
    std ``sigma_b`` is as private as one Gaussian with ``z = (z_delta^-2 + (2 sigma_b)^-2)^(-1/2)``,
    so ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``.  Requires ``sigma_b >= z / 2``.
    """
    if noise_multiplier <= 0 or clipped_count_stddev <= 0:
        raise ConfigError("noise_multiplier and clipped_count_stddev must be positive")
    inv = noise_multiplier**-2 - (2.0 * clipped_count_stddev) ** -2
    if inv <= 0:
        raise ConfigError(
            f"clipped_count_stddev={clipped_count_stddev} is too small for noise_multiplier={noise_multiplier}: "
            f"it must be larger than noise_multiplier / 2 = {noise_multiplier / 2}"
        )
    return float(inv**-0.5)


@dataclass
class AdaptiveClipper:
    """Clip norm that tracks the ``target_quantile`` of the contributions' norms (Andrew et al. 2021).

    After each round with ``m`` contributions: ``b = (#{norm <= C} + N(0, sigma_b^2)) / m`` and
    ``C <- C * exp(-learning_rate * (b - target_quantile))``.  ``clipped_count_stddev`` is ``sigma_b``
    (the paper suggests about ``m / 20``); the privacy cost of the count is accounted by
    :func:`adaptive_update_noise_multiplier`.
    """

    clip_norm: float
    target_quantile: float = 0.5
    learning_rate: float = 0.2
    clipped_count_stddev: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.clip_norm) or self.clip_norm <= 0:
            raise ConfigError(f"clip_norm must be a positive finite number, got {self.clip_norm}")
        if not 0.0 < self.target_quantile < 1.0:
            raise ConfigError(f"target_quantile must be in (0, 1), got {self.target_quantile}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if not self.clipped_count_stddev >= 0:
            raise ConfigError(f"clipped_count_stddev must be non-negative, got {self.clipped_count_stddev}")

    def update(self, norms: Sequence[float], rng: np.random.Generator, *, expected: int | None = None) -> float:
        """Move the clip norm given this round's (pre-clipping) norms; returns the new clip norm.

        ``expected`` is the fixed denominator ``m`` (expected number of contributions under Poisson
        sampling); by default the number of norms.
        """
        m = expected if expected is not None else len(norms)
        if m <= 0:
            return self.clip_norm
        unclipped = float(np.sum(np.asarray(norms, dtype=np.float64) <= self.clip_norm))
        noised = unclipped + (rng.normal(0.0, self.clipped_count_stddev) if self.clipped_count_stddev > 0 else 0.0)
        fraction = noised / m
        self.clip_norm = float(self.clip_norm * math.exp(-self.learning_rate * (fraction - self.target_quantile)))
        return self.clip_norm
