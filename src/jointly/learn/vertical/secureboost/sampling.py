"""Seeded choices every party (and the reference) must make alike: validation rows, row and column subsamples."""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import NDArray

from jointly.learn.vertical.secureboost.config import SecureBoostConfig

IntArray = NDArray[np.int64]

_VALIDATION, _ROWS, _COLUMNS = 1, 2, 3


def validation_split(config: SecureBoostConfig, n_rows: int) -> tuple[IntArray, IntArray]:
    """``(train, validation)`` row indices, each sorted; chosen by the guest only."""
    n_val = round(config.validation_fraction * n_rows)
    if config.validation_fraction > 0:
        n_val = min(max(n_val, 1), n_rows - 2)
    if n_val <= 0:
        return np.arange(n_rows, dtype=np.int64), np.empty(0, dtype=np.int64)
    perm = np.random.default_rng([config.seed, _VALIDATION]).permutation(n_rows)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)


def row_sample(config: SecureBoostConfig, tree: int, train: IntArray) -> IntArray:
    """The training rows tree ``tree`` is grown on (sorted)."""
    if config.subsample >= 1.0:
        return train
    m = max(2, round(config.subsample * len(train)))
    rng = np.random.default_rng([config.seed, _ROWS, tree])
    return np.sort(rng.choice(train, size=min(m, len(train)), replace=False)).astype(np.int64)


def column_sample(config: SecureBoostConfig, tree: int, block: str, n_features: int) -> IntArray:
    """The features of party (block) ``block`` that tree ``tree`` may split on (sorted indices).

    Every party samples its own columns; the seed mixes in the block's name, so the plaintext
    reference, given the same block names, samples the same columns.
    """
    if config.colsample >= 1.0 or n_features == 0:
        return np.arange(n_features, dtype=np.int64)
    k = max(1, round(config.colsample * n_features))
    rng = np.random.default_rng([config.seed, _COLUMNS, tree, zlib.crc32(block.encode())])
    return np.sort(rng.choice(n_features, size=k, replace=False)).astype(np.int64)
