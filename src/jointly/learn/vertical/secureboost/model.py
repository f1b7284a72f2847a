"""The two halves of a SecureBoost model; each party stores only its own.

* :class:`GuestModel` (guest): the trees -- structure, leaf weights, the guest's own splits
  (feature, threshold) and, for host splits, only ``(host name, opaque split id)`` -- plus the
  loss constants.  It holds no host feature name, value or threshold.
* :class:`HostModel` (each host): ``{opaque split id: (feature name, threshold)}`` for the splits
  of that host that the final trees use.  It holds no tree structure, leaf weight or label
  information.

Both serialise to plain dicts of JSON-safe types (``to_dict`` / ``from_dict``) with a format
name and version; ``+inf`` thresholds ("not missing") are stored as ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from jointly.errors import ConfigError, DataError
from jointly.learn.vertical.secureboost.config import TASKS, SecureBoostConfig
from jointly.learn.vertical.secureboost.loss import Objective, objective_from_params
from jointly.learn.vertical.secureboost.tree import Tree

FORMAT_VERSION = 1
GUEST_FORMAT = "jointly.secureboost.guest"
HOST_FORMAT = "jointly.secureboost.host"
GUEST_PART = "jointly.secureboost.guest_part"  #: an estimator's stored part: config + model
HOST_PART = "jointly.secureboost.host_part"

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def _check_header(data: object, fmt: str) -> dict[str, object]:
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise DataError("model", f"not a {fmt} model")
    if data.get("version") != FORMAT_VERSION:
        raise DataError("model", f"unsupported {fmt} model version {data.get('version')!r} (known: {FORMAT_VERSION})")
    return data


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError("model", "feature names must be a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class GuestModel:
    """The guest's part of a model (see the module docstring)."""

    task: str
    n_classes: int
    objective_params: dict[str, float]
    base_score: tuple[float, ...]
    feature_names: tuple[str, ...]
    hosts: tuple[str, ...]
    trees: tuple[Tree, ...]
    objective: Objective = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError("model", f"unknown task {self.task!r}")
        object.__setattr__(self, "objective", objective_from_params(self.task, self.n_classes, self.objective_params))
        if len(self.base_score) != self.objective.n_outputs:
            raise DataError("model", f"base_score needs {self.objective.n_outputs} values")
        for tree in self.trees:
            for node in tree.nodes:
                if node.is_remote and node.party not in self.hosts:
                    raise DataError("model", f"a tree refers to unknown host {node.party!r}")
                if not node.is_leaf and not node.is_remote and not 0 <= node.feature < len(self.feature_names):
                    raise DataError("model", f"a tree refers to feature {node.feature} of {len(self.feature_names)}")
                if node.is_leaf and len(node.value) != self.objective.n_outputs:
                    raise DataError("model", f"a leaf needs {self.objective.n_outputs} values")

    @property
    def n_outputs(self) -> int:
        return self.objective.n_outputs

    def remote_splits(self) -> dict[str, list[str]]:
        """For each host, the opaque ids (hex) of its splits that the trees use, sorted."""
        out: dict[str, set[str]] = {h: set() for h in self.hosts}
        for tree in self.trees:
            for party, split in tree.remote_splits:
                out[party].add(split)
        return {h: sorted(ids) for h, ids in out.items()}

    def raw_scores(self, features: FloatArray, remote: Mapping[tuple[str, str], BoolArray]) -> FloatArray:
        """Raw scores ``(rows, n_outputs)`` of the guest's ``features`` and the hosts' split masks."""
        raw = np.tile(np.asarray(self.base_score, dtype=np.float64), (features.shape[0], 1))
        for tree in self.trees:
            tree.apply(features, remote, raw)
        return raw

    def output(self, raw: FloatArray) -> FloatArray:
        """P(y=1) for binary, class probabilities for multiclass, values for regression."""
        return self.objective.output(raw)

    def predict_local(self, features: FloatArray) -> FloatArray:
        """Predict without any host: only for models with no host split (e.g. the plaintext reference)."""
        if any(tree.remote_splits for tree in self.trees):
            raise DataError("model", "this model has host splits: predict with predict_guest / the estimator")
        return self.output(self.raw_scores(features, {}))

    def to_dict(self) -> dict[str, object]:
        return {
            "format": GUEST_FORMAT,
            "version": FORMAT_VERSION,
            "task": self.task,
            "n_classes": self.n_classes,
            "objective": dict(self.objective_params),
            "base_score": list(self.base_score),
            "feature_names": list(self.feature_names),
            "hosts": list(self.hosts),
            "trees": [tree.to_dict() for tree in self.trees],
        }

    @classmethod
    def from_dict(cls, data: object) -> GuestModel:
        d = _check_header(data, GUEST_FORMAT)
        try:
            task, n_classes = str(d["task"]), int(d["n_classes"])  # type: ignore[call-overload]
            params = d["objective"]
            if not isinstance(params, dict):
                raise DataError("model", "objective parameters must be a mapping")
            n_out = n_classes if task == "multiclass" else 1
            trees_raw = d["trees"]
            base_raw = d["base_score"]
            if not isinstance(trees_raw, list) or not isinstance(base_raw, list):
                raise DataError("model", "trees and base_score must be lists")
            return cls(
                task=task,
                n_classes=n_classes,
                objective_params={str(k): float(v) for k, v in params.items()},
                base_score=tuple(float(v) for v in base_raw),
                feature_names=_names(d["feature_names"]),
                hosts=_names(d["hosts"]),
                trees=tuple(Tree.from_dict(t, n_out) for t in trees_raw),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError("model", f"malformed guest model: {exc}") from exc


@dataclass(frozen=True)
class HostSplit:
    """One split of a host: ``x[feature] <= threshold`` goes left; missing values go right."""

    feature: str
    threshold: float


@dataclass(frozen=True)
class HostModel:
    """A host's part of a model: its feature names and ``{opaque split id (hex): split}``."""

    feature_names: tuple[str, ...]
    splits: dict[str, HostSplit]

    def __post_init__(self) -> None:
        known = set(self.feature_names)
        for sid, s in self.splits.items():
            if s.feature not in known:
                raise DataError("model", f"split {sid} uses unknown feature {s.feature!r}")

    def left_masks(self, features: FloatArray, split_ids: Sequence[str]) -> list[BoolArray]:
        """For each split id, whether each row of ``features`` (columns as ``feature_names``) goes left."""
        index = {name: j for j, name in enumerate(self.feature_names)}
        out = []
        for sid in split_ids:
            s = self.splits[sid]
            out.append(np.asarray(features[:, index[s.feature]] <= s.threshold))  # NaN compares False: right
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "format": HOST_FORMAT,
            "version": FORMAT_VERSION,
            "feature_names": list(self.feature_names),
            "splits": {
                sid: {"feature": s.feature, "threshold": None if math.isinf(s.threshold) else s.threshold}
                for sid, s in sorted(self.splits.items())
            },
        }

    @classmethod
    def from_dict(cls, data: object) -> HostModel:
        d = _check_header(data, HOST_FORMAT)
        raw = d.get("splits")
        if not isinstance(raw, dict):
            raise DataError("model", "splits must be a mapping")
        splits: dict[str, HostSplit] = {}
        try:
            for sid, s in raw.items():
                thr = s["threshold"]
                splits[str(sid)] = HostSplit(str(s["feature"]), float("inf") if thr is None else float(thr))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError("model", f"malformed host split: {exc}") from exc
        return cls(feature_names=_names(d.get("feature_names")), splits=splits)


def labels_of(task: str, scores: FloatArray) -> NDArray[np.float64] | NDArray[np.int64]:
    """Predicted labels from :meth:`GuestModel.output` scores (values for regression)."""
    if task == "binary":
        return np.asarray(scores >= 0.5, dtype=np.int64)
    if task == "multiclass":
        return np.asarray(scores.argmax(axis=1), dtype=np.int64)
    return np.asarray(scores, dtype=np.float64)


def load_part(
    data: object, fmt: str, config_type: type[SecureBoostConfig]
) -> tuple[SecureBoostConfig, dict[str, object]]:
    """The configuration and the model dict of an estimator's stored part."""
    d = _check_header(data, fmt)
    raw_config, model = d.get("config"), d.get("model")
    if not isinstance(raw_config, dict) or not isinstance(model, dict):
        raise DataError("model", f"a {fmt} needs 'config' and 'model' mappings")
    try:
        config = config_type.from_dict(raw_config)
    except ConfigError as exc:
        raise DataError("model", f"stored configuration is invalid: {exc}") from exc
    return config, model
