"""Plaintext SecureBoost: the same algorithm on one party's (or the concatenated) features, no crypto.

It runs the booster of :mod:`.booster` with plaintext split sources only, so it grows exactly the
trees SecureBoost grows -- same binning, same fixed-point gradients, same gains, same tie-breaks
-- when given the parties' features concatenated in job order (guest first, then the hosts) and
``blocks`` naming each party's columns (column sampling is seeded per party).  Uses:

* the reference the federated trainer is tested against;
* the *guest-only baseline*: train on the guest's features alone to measure what the hosts add.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from jointly.errors import ConfigError
from jointly.learn.vertical.secureboost.binning import BinnedMatrix, as_matrix
from jointly.learn.vertical.secureboost.booster import boost
from jointly.learn.vertical.secureboost.config import SecureBoostConfig
from jointly.learn.vertical.secureboost.histogram import LocalSplitter
from jointly.learn.vertical.secureboost.loss import check_labels, fit_objective
from jointly.learn.vertical.secureboost.model import GuestModel, labels_of
from jointly.learn.vertical.secureboost.predict import model_matrix
from jointly.learn.vertical.secureboost.sampling import validation_split
from jointly.progress import NullProgress, Progress

FloatArray = NDArray[np.float64]


class ReferenceBooster:
    """Scikit-learn style plaintext trainer; ``blocks`` = ``[(party, n_columns), ...]`` in column order.

    Without ``blocks`` all columns form one block named ``"guest"``.  After ``fit``: ``model_``
    (a :class:`GuestModel` with local splits only), ``history_`` and ``best_iteration_``.
    """

    def __init__(
        self,
        config: SecureBoostConfig,
        *,
        blocks: Sequence[tuple[str, int]] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.blocks = list(blocks) if blocks is not None else None
        self.progress: Progress = progress or NullProgress()

    def fit(self, X: object, y: object) -> ReferenceBooster:
        cfg = self.config
        matrix, names = as_matrix(X, source="features")
        labels = check_labels(y, cfg, matrix.shape[0])
        blocks = self.blocks if self.blocks is not None else [("guest", matrix.shape[1])]
        if sum(k for _, k in blocks) != matrix.shape[1] or any(k < 0 for _, k in blocks):
            raise ConfigError(f"blocks {blocks} do not cover the {matrix.shape[1]} columns")
        train, val = validation_split(cfg, matrix.shape[0])
        objective = fit_objective(cfg, labels[train])
        sources = []
        start = 0
        for party, k in blocks:
            cols = slice(start, start + k)
            binned = BinnedMatrix.fit(matrix[:, cols], names[cols], cfg.max_bins)
            sources.append(LocalSplitter(party, binned, cfg, column_offset=start))
            start += k
        result = boost(
            cfg,
            objective,
            labels,
            sources,
            n_rows=matrix.shape[0],
            train_rows=train,
            validation_rows=val,
            progress=self.progress,
        )
        self.model_ = GuestModel(
            task=cfg.task,
            n_classes=cfg.n_classes,
            objective_params=objective.params(),
            base_score=tuple(float(v) for v in result.base_score),
            feature_names=tuple(names),
            hosts=(),
            trees=tuple(result.trees),
        )
        self.history_ = result.history
        self.best_iteration_ = result.best_iteration
        return self

    def predict_scores(self, X: object) -> FloatArray:
        """P(y=1) (binary), class probabilities (multiclass) or values (regression)."""
        return self.model_.predict_local(model_matrix(X, self.model_.feature_names, "features"))

    def predict_proba(self, X: object) -> FloatArray:
        if self.config.task == "regression":
            raise ConfigError("predict_proba is for classification; use predict for regression")
        out = self.predict_scores(X)
        return np.column_stack([1.0 - out, out]) if self.config.task == "binary" else out

    def predict(self, X: object) -> NDArray[np.float64] | NDArray[np.int64]:
        return labels_of(self.config.task, self.predict_scores(X))


def fit_reference(
    config: SecureBoostConfig,
    X: object,
    y: object,
    *,
    blocks: Sequence[tuple[str, int]] | None = None,
    progress: Progress | None = None,
) -> ReferenceBooster:
    """Train the plaintext reference (e.g. the guest-only baseline: the guest's features alone)."""
    return ReferenceBooster(config, blocks=blocks, progress=progress).fit(X, y)
