"""Quantile binning, done by every party on its own features; bin edges never leave their owner.

For a feature with values ``x`` (missing = NaN) the edges are distinct data values
``e_0 < e_1 < ... < e_{k-1}`` (the quantiles ``1/B .. (B-1)/B`` of the non-missing values, or every
distinct value but the largest when there are at most ``B = max_bins`` of them).  Value bin ``b``
holds ``e_{b-1} < x <= e_b``; the last value bin ``k`` holds ``x > e_{k-1}``.

Missing values policy: they get their own bin, numbered after the value bins, and every split
sends them right.  A split is ``x <= threshold`` (left) with ``threshold = e_b``; when a feature
has missing values one more candidate, "not missing" (every value left, NaN right), is offered
(threshold ``+inf``).  So a split on bins is the same as a split on raw values, for the
training rows and for any new row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from jointly.errors import DataError

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def as_matrix(table: object, *, source: str = "features") -> tuple[FloatArray, list[str]]:
    """``table`` (DataFrame or 2-d array) as a float64 matrix and its column names; NaN marks missing.

    Raises :class:`~jointly.errors.DataError` for non-numeric or infinite values.
    """
    if isinstance(table, pd.DataFrame):
        names = [str(c) for c in table.columns]
        try:
            matrix = table.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"every column must be numeric: {exc}") from exc
    else:
        try:
            matrix = np.asarray(table, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(source, f"values must be numeric: {exc}") from exc
        if matrix.ndim != 2:
            raise DataError(source, f"expected a 2-d table, got shape {matrix.shape}")
        names = [f"x{i}" for i in range(matrix.shape[1])]
    if len(set(names)) != len(names):
        raise DataError(source, "column names must be unique")
    if matrix.shape[0] == 0:
        raise DataError(source, "the table has no rows")
    bad = np.isinf(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(source, f"column {names[col]!r} holds an infinite value", row=int(row))
    return np.ascontiguousarray(matrix), names


@dataclass(frozen=True)
class FeatureBins:
    """The bin edges of one feature (kept by the feature's owner)."""

    edges: FloatArray
    has_missing: bool

    @property
    def n_value_bins(self) -> int:
        return len(self.edges) + 1

    @property
    def n_candidates(self) -> int:
        """Thresholds worth trying: every edge, plus "not missing" if the feature has missing values."""
        return len(self.edges) + int(self.has_missing)

    def threshold(self, b: int) -> float:
        """The raw-value threshold of candidate ``b`` (``+inf`` for "not missing")."""
        return float(self.edges[b]) if b < len(self.edges) else float("inf")

    def codes(self, x: FloatArray) -> NDArray[np.uint16]:
        out = np.searchsorted(self.edges, x, side="left").astype(np.uint16)
        out[np.isnan(x)] = self.n_value_bins  # the missing bin, after every value bin
        return out


def fit_feature(x: FloatArray, max_bins: int) -> FeatureBins:
    """Quantile edges of one column (see the module docstring)."""
    missing = np.isnan(x)
    values = x[~missing]
    if values.size == 0:
        return FeatureBins(edges=np.empty(0), has_missing=bool(missing.any()))
    distinct = np.unique(values)
    if distinct.size <= max_bins:
        edges = distinct[:-1]
    else:
        qs = np.quantile(values, np.arange(1, max_bins) / max_bins, method="inverted_cdf")
        edges = np.unique(qs)
        edges = edges[edges < distinct[-1]]
    return FeatureBins(edges=np.ascontiguousarray(edges, dtype=np.float64), has_missing=bool(missing.any()))


@dataclass(frozen=True)
class BinnedMatrix:
    """A party's features as bin codes, with the tables both histogram builders need.

    ``codes[i, f]`` is the bin of row ``i`` in feature ``f`` (missing: ``n_value_bins[f]``).
    Candidates (possible splits) are numbered feature by feature, bin by bin: candidate ``c``
    is ``x[cand_feature[c]] <= threshold of bin cand_bin[c]``.  That order is the tie-break
    order of every split search.
    """

    names: tuple[str, ...]
    features: tuple[FeatureBins, ...]
    codes: NDArray[np.uint16]

    @classmethod
    def fit(cls, values: FloatArray, names: Sequence[str], max_bins: int) -> BinnedMatrix:
        feats = tuple(fit_feature(values[:, j], max_bins) for j in range(values.shape[1]))
        codes = np.empty(values.shape, dtype=np.uint16)
        for j, fb in enumerate(feats):
            codes[:, j] = fb.codes(values[:, j])
        return cls(names=tuple(names), features=feats, codes=codes)

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def segments_per_feature(self) -> IntArray:
        """Histogram bins per feature: the value bins, plus the missing bin if there are missing values."""
        return np.array([f.n_value_bins + int(f.has_missing) for f in self.features], dtype=np.int64)

    def candidates(self, selected: IntArray) -> tuple[IntArray, IntArray]:
        """``(feature, bin)`` of every candidate split of the ``selected`` features, in tie-break order."""
        feats: list[IntArray] = []
        bins: list[IntArray] = []
        for f in selected.tolist():
            k = self.features[f].n_candidates
            feats.append(np.full(k, f, dtype=np.int64))
            bins.append(np.arange(k, dtype=np.int64))
        if not feats:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(feats), np.concatenate(bins)

    def goes_left(self, feature: int, b: int, rows: IntArray | slice) -> NDArray[np.bool_]:
        """Whether each of ``rows`` goes left under candidate ``(feature, b)``."""
        return np.asarray(self.codes[rows, feature] <= b)
