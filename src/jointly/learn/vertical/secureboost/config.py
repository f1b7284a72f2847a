"""The configuration of a SecureBoost job: one frozen dataclass that every party passes unchanged.

The guest sends a fingerprint of it in the setup message and every host refuses to
take part with a different one, so all parties bin, sample and grow trees alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Literal

from jointly.errors import ConfigError

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")

MAX_DEPTH = 20  #: node ids are heap indices below 2**(MAX_DEPTH + 1)
MAX_BINS = 256
MAX_CLASSES = 64
SAFE_KEY_BITS = (2048, 3072, 4096)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SecureBoostConfig:
    """How a SecureBoost model is trained; the guest and every host must use the same values.

    * ``task``: ``"binary"`` (logistic loss, labels in {0, 1}), ``"multiclass"`` (softmax over
      ``n_classes`` classes, labels ``0 .. n_classes-1``, one multi-output tree per round) or
      ``"regression"`` (squared error; labels are standardised by the guest, see :mod:`.loss`).
    * ``n_trees``: boosting rounds; ``max_depth``: levels of splits per tree (a depth-4 tree has
      at most 16 leaves); ``learning_rate``: shrinkage of every leaf weight.
    * ``l2`` (lambda), ``min_child_weight`` (least hessian sum of a child, summed over classes) and
      ``min_split_gain`` (gamma): XGBoost's regularisation; a node splits only if its best gain
      ``1/2 [G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)]`` is above ``min_split_gain``.
    * ``max_bins``: quantile bins per feature (missing values get one more bin of their own).
    * ``subsample`` / ``colsample``: fraction of training rows / of each party's features used
      per tree (seeded with ``seed``).
    * ``early_stopping_rounds`` with ``validation_fraction``: the guest holds out that fraction
      of rows (seeded) and stops when the validation loss has not improved for that many trees;
      the model keeps the trees up to the best one.  ``validation_fraction`` alone only reports
      validation metrics.
    * ``key_bits``: Paillier modulus size (2048, 3072 or 4096); smaller keys need
      ``allow_unsafe_key_size=True`` and are for tests only.
    * ``frac_bits``: fixed-point precision of gradients and hessians (``round(g * 2**frac_bits)``).
    """

    task: Task = "binary"
    n_classes: int = 2
    n_trees: int = 10
    max_depth: int = 4
    learning_rate: float = 0.3
    l2: float = 1.0
    min_child_weight: float = 1.0
    min_split_gain: float = 0.0
    max_bins: int = 32
    subsample: float = 1.0
    colsample: float = 1.0
    early_stopping_rounds: int | None = None
    validation_fraction: float = 0.0
    key_bits: int = 2048
    allow_unsafe_key_size: bool = False
    frac_bits: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if not _is_int(self.n_classes) or not 2 <= self.n_classes <= MAX_CLASSES:
            raise ConfigError(f"n_classes must be an integer from 2 to {MAX_CLASSES}, got {self.n_classes!r}")
        if self.task == "multiclass" and self.n_classes < 3:
            raise ConfigError("multiclass needs n_classes >= 3 (use task='binary' for two classes)")
        if self.task == "binary" and self.n_classes != 2:
            raise ConfigError(f"task 'binary' has n_classes 2, got {self.n_classes!r}")
        self._int_range("n_trees", 1, 100_000)
        self._int_range("max_depth", 1, MAX_DEPTH)
        self._int_range("max_bins", 2, MAX_BINS)
        self._int_range("frac_bits", 8, 48)
        self._int_range("seed", 0, 2**63 - 1)
        if not _is_real(self.learning_rate) or not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        for name in ("l2", "min_child_weight", "min_split_gain"):
            value = getattr(self, name)
            if not _is_real(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.l2 == 0 and self.min_child_weight == 0:
            raise ConfigError("l2 and min_child_weight cannot both be 0 (leaf weights -G/(H+l2) would be undefined)")
        for name in ("subsample", "colsample"):
            value = getattr(self, name)
            if not _is_real(value) or not 0 < value <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {value!r}")
        if not _is_real(self.validation_fraction) or not 0 <= self.validation_fraction < 0.9:
            raise ConfigError(f"validation_fraction must be in [0, 0.9), got {self.validation_fraction!r}")
        if self.early_stopping_rounds is not None:
            if not _is_int(self.early_stopping_rounds) or self.early_stopping_rounds < 1:
                raise ConfigError(
                    f"early_stopping_rounds must be a positive integer or None, got {self.early_stopping_rounds!r}"
                )
            if self.validation_fraction == 0:
                raise ConfigError("early_stopping_rounds needs validation_fraction > 0")
        if not isinstance(self.allow_unsafe_key_size, bool):
            raise ConfigError("allow_unsafe_key_size must be a bool")
        if not _is_int(self.key_bits) or self.key_bits < 256 or self.key_bits > 8192:
            raise ConfigError(f"key_bits must be one of {SAFE_KEY_BITS}, got {self.key_bits!r}")
        if self.key_bits not in SAFE_KEY_BITS and not self.allow_unsafe_key_size:
            raise ConfigError(
                f"key_bits={self.key_bits} is not a safe Paillier key size (use one of {SAFE_KEY_BITS}); "
                "smaller keys need allow_unsafe_key_size=True and are for tests only"
            )

    def _int_range(self, name: str, low: int, high: int) -> None:
        value = getattr(self, name)
        if not _is_int(value) or not low <= value <= high:
            raise ConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")

    @property
    def n_outputs(self) -> int:
        """Raw scores per row: one per class for multiclass, else one."""
        return self.n_classes if self.task == "multiclass" else 1

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SecureBoostConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown SecureBoost settings: {', '.join(unknown)}")
        return cls(**data)  # type: ignore[arg-type]

    def fingerprint(self) -> bytes:
        """SHA-256 of the canonical JSON of every setting; parties compare it at setup."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(b"jointly.secureboost.config.v1\x00" + text.encode()).digest()
