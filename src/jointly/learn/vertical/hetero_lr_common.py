"""Pieces of hetero LR shared by every party and by the plaintext reference.

The configuration, the per-party standardisation, the public batch schedule,
the fixed-point scales of the protocol and :func:`reference_fit`, the plaintext
algorithm the federated protocol reproduces (see :mod:`jointly.learn.vertical.hetero_lr`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from jointly.channel.codec import message
from jointly.errors import ConfigError, DataError

FloatArray = NDArray[np.float64]
IntVector = NDArray[np.object_]  # numpy object array of Python ints

PROTOCOL_VERSION = 1
MIN_SAFE_KEY_BITS = 2048
#: assumed bound on |z|, |u| and |w| (real units) used to size statistical masks; larger values stay exact,
#: only the hiding margin shrinks by the excess bits
VALUE_BITS = 32
#: standardised feature values must stay below this in absolute value (fixed-point range)
MAX_FEATURE_ABS = float(1 << 20)
LOG2 = math.log(2.0)

Schedule = Literal["constant", "decay", "sqrt_decay"]
Convergence = Literal["loss", "none"]


@dataclass(frozen=True)
class HeteroLRConfig:
    """Hyper-parameters of hetero logistic regression; every party must hold the same values.

    ``learning_rate`` is divided by ``1 + decay * epoch`` (``"decay"``) or its square
    root (``"sqrt_decay"``); ``"constant"`` ignores ``decay``.  ``alpha`` is the L2
    strength (the intercept is not penalised).  ``batch_size`` rows per mini-batch
    (the epoch's rows are split into ``ceil(n / batch_size)`` batches of nearly equal
    size, reshuffled every epoch from the public ``seed``).  Training stops after
    ``max_iter`` epochs or, with ``convergence="loss"``, once the Taylor loss of an
    epoch changes by less than ``tol``.  ``frac_bits`` is the fixed-point precision
    (values are carried as ``round(x * 2**frac_bits)``) and ``mask_bits`` the
    statistical hiding margin of every additive mask (the masked value reveals at
    most ``2**-mask_bits`` about what it hides).
    """

    learning_rate: float = 0.15
    lr_schedule: Schedule = "constant"
    decay: float = 0.0
    alpha: float = 0.01
    batch_size: int = 256
    max_iter: int = 30
    tol: float = 1e-4
    convergence: Convergence = "loss"
    seed: int = 0
    key_bits: int = 2048
    allow_unsafe_key_size: bool = False
    frac_bits: int = 40
    mask_bits: int = 80

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (_finite(self.learning_rate) and self.learning_rate > 0, "learning_rate must be > 0"),
            (self.lr_schedule in ("constant", "decay", "sqrt_decay"), "lr_schedule must be constant/decay/sqrt_decay"),
            (_finite(self.decay) and self.decay >= 0, "decay must be >= 0"),
            (_finite(self.alpha) and self.alpha >= 0, "alpha (L2 strength) must be >= 0"),
            (_int(self.batch_size) and self.batch_size >= 1, "batch_size must be an integer >= 1"),
            (_int(self.max_iter) and 1 <= self.max_iter <= 100_000, "max_iter must be an integer in [1, 100000]"),
            (_finite(self.tol) and self.tol >= 0, "tol must be >= 0"),
            (self.convergence in ("loss", "none"), "convergence must be 'loss' or 'none'"),
            (_int(self.seed) and 0 <= self.seed < 2**63, "seed must be an integer in [0, 2**63)"),
            (_int(self.key_bits) and self.key_bits >= 512, "key_bits must be an integer >= 512"),
            (self.key_bits >= MIN_SAFE_KEY_BITS or self.allow_unsafe_key_size, _UNSAFE),
            (_int(self.frac_bits) and 16 <= self.frac_bits <= 64, "frac_bits must be an integer in [16, 64]"),
            (_int(self.mask_bits) and 40 <= self.mask_bits <= 256, "mask_bits must be an integer in [40, 256]"),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigError(f"HeteroLRConfig: {problem}")
        if self.max_plaintext_bits() >= self.key_bits - 8:
            raise ConfigError(
                f"HeteroLRConfig: frac_bits={self.frac_bits} and mask_bits={self.mask_bits} need plaintexts of "
                f"{self.max_plaintext_bits()} bits, too many for {self.key_bits}-bit keys"
            )

    def max_plaintext_bits(self) -> int:
        """A bound on the size of every plaintext the protocol builds (weights refresh, loss sums)."""
        f = self.frac_bits
        return max(5 * f + VALUE_BITS + self.mask_bits + 8, 2 * (2 * f + VALUE_BITS + self.mask_bits) + 48)

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based)."""
        if self.lr_schedule == "decay":
            return self.learning_rate / (1.0 + self.decay * epoch)
        if self.lr_schedule == "sqrt_decay":
            return self.learning_rate / math.sqrt(1.0 + self.decay * epoch)
        return self.learning_rate

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> HeteroLRConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"HeteroLRConfig: unknown fields {unknown}")
        try:
            return cls(**data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(f"HeteroLRConfig: {exc}") from exc

    def digest(self) -> str:
        """A fingerprint the parties compare before training."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_UNSAFE = "key_bits below 2048 is unsafe; set allow_unsafe_key_size=True only in tests"


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@message("jointly.hetero_lr.Hello")
@dataclass(frozen=True)
class Hello:
    """First message of a training job: who is who, the data shape, and the config every party must share."""

    version: int
    mode: str  # "two_party" or "arbiter"
    config_digest: str
    n_rows: int
    hosts: list[str] = field(default_factory=list)  # the guest's host order (guest's hello only)


# -- local data preparation ---------------------------------------------------------------
@dataclass(frozen=True)
class Scaler:
    """Per-party standardisation ``(x - mean) / scale`` (scale 1 for constant columns); stays with its party."""

    mean: FloatArray
    scale: FloatArray

    @classmethod
    def fit(cls, x: FloatArray) -> Scaler:
        std = x.std(axis=0)
        return cls(mean=x.mean(axis=0), scale=np.where(std > 0, std, 1.0))

    def transform(self, x: FloatArray, what: str) -> FloatArray:
        if x.shape[1] != self.mean.shape[0]:
            raise DataError(what, f"has {x.shape[1]} feature columns, the model was trained on {self.mean.shape[0]}")
        out = (x - self.mean) / self.scale
        if np.any(np.abs(out) >= MAX_FEATURE_ABS):
            raise DataError(what, f"a standardised value is beyond ±{MAX_FEATURE_ABS:g} (extreme outlier)")
        return np.asarray(out, dtype=np.float64)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale]}

    @classmethod
    def from_dict(cls, data: object) -> Scaler:
        if not isinstance(data, Mapping) or set(data) != {"mean", "scale"}:
            raise ConfigError("model scaler must be {'mean': [...], 'scale': [...]}")
        mean = np.asarray(data["mean"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape or np.any(scale <= 0):
            raise ConfigError("model scaler has mismatched or non-positive entries")
        return cls(mean=mean, scale=scale)


def check_features(x: ArrayLike, what: str) -> FloatArray:
    """A 2-D float matrix of finite values, or a :class:`DataError` naming ``what``."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(what, f"is not numeric: {exc}") from exc
    if arr.ndim != 2:
        raise DataError(what, f"must be a 2-D matrix (rows x features), got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise DataError(what, f"needs at least 2 rows and 1 feature, got shape {arr.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
    if bad.size:
        raise DataError(what, "holds NaN or infinite values", row=int(bad[0]))
    return arr


def check_labels(y: ArrayLike, n_rows: int) -> NDArray[np.int64]:
    """Binary labels 0/1 for ``n_rows`` rows, or a :class:`DataError`."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError("labels", f"must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise DataError("labels", f"has {arr.shape[0]} rows but the guest features have {n_rows}")
    try:
        values = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError("labels", "hetero LR needs binary labels 0/1") from exc
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        found = sorted({str(v) for v in arr[bad][:5].tolist()})
        raise DataError("labels", f"hetero LR needs binary labels 0/1, found {', '.join(found)}", row=int(bad[0]))
    out = values.astype(np.int64)
    if out.min() == out.max():
        raise DataError("labels", f"all labels are {out[0]}; both classes are needed")
    return out


def epoch_batches(n_rows: int, batch_size: int, seed: int, epoch: int) -> list[NDArray[np.int64]]:
    """The row indices of each mini-batch of ``epoch``: a public permutation from ``(seed, epoch)``.

    Rows are ordered by a keyed hash of their index (BLAKE2b), not by a numpy
    generator, so parties running different numpy versions draw the same batches.
    """
    key = hashlib.sha256(f"jointly.hetero_lr.batches:{seed}:{epoch}".encode()).digest()
    ranks = np.fromiter(
        (int.from_bytes(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8, key=key).digest(), "big")
         for i in range(n_rows)),
        dtype=np.uint64,
        count=n_rows,
    )  # fmt: skip
    perm = np.argsort(ranks, kind="stable")
    n_batches = max(1, math.ceil(n_rows / batch_size))
    return [np.asarray(b, dtype=np.int64) for b in np.array_split(perm, n_batches)]


# -- fixed point ----------------------------------------------------------------------------
def fixed(x: ArrayLike, bits: int) -> IntVector:
    """``round(x * 2**bits)`` as an object array of Python ints (exact for float64 inputs)."""
    arr = np.asarray(x, dtype=np.float64)
    scaled = np.rint(np.ldexp(arr, bits))
    out = np.empty(arr.shape, dtype=object)
    out.reshape(-1)[:] = [int(v) for v in scaled.reshape(-1)]
    return out


def fixed_scalar(x: float, bits: int) -> int:
    """``round(x * 2**bits)`` of one float, exactly."""
    return round(Fraction(x) * (1 << bits))


def random_mask(count: int, bits: int) -> IntVector:
    """``count`` independent uniform integers in ``[0, 2**bits)`` from the OS CSPRNG."""
    out = np.empty(count, dtype=object)
    out[:] = [secrets.randbits(bits) for _ in range(count)]
    return out


def int_matmul_t(x: IntVector, v: IntVector) -> IntVector:
    """``x.T @ v`` over Python ints (x: rows x cols, v: rows) -> cols."""
    out = np.empty(x.shape[1], dtype=object)
    out[:] = [sum((a * b for a, b in zip(x[:, j], v, strict=True)), 0) for j in range(x.shape[1])]
    return out


def with_intercept(x: FloatArray) -> FloatArray:
    """The guest's design matrix: its standardised features and a last column of ones."""
    return np.hstack([x, np.ones((x.shape[0], 1))])


# -- the plaintext reference ----------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceModel:
    """Weights learned by :func:`reference_fit`, on each party's standardised features."""

    guest_coef: FloatArray
    intercept: float
    host_coefs: list[FloatArray]
    loss_history: list[float]
    n_iter: int
    converged: bool


def reference_fit(
    guest_x: ArrayLike, y: ArrayLike, host_xs: Sequence[ArrayLike], config: HeteroLRConfig
) -> ReferenceModel:
    """The algorithm of the federated protocol, computed in the clear in one place.

    Every party standardises its own columns; the guest adds the intercept.  Per
    mini-batch ``B`` (of size ``b``), with ``z = X_g w_g + sum_j X_j w_j`` and the
    second-order Taylor expansion of the logistic loss at 0 (as FATE):

    * residual ``d = 0.25 z + 0.5 - y``;
    * gradient ``g_p = X_p[B]^T d / b + alpha * w_p`` (no penalty on the intercept);
    * update ``w_p -= lr_epoch * g_p`` for every party at once;
    * Taylor loss of the batch, before its update: ``sum(log 2 - 0.5 y' z + 0.125 z^2)``,
      ``y' = 2y - 1``; the epoch loss is their total over ``n``.

    Without host matrices this is the guest-only baseline.
    """
    xg = check_features(guest_x, "guest features")
    labels = check_labels(y, xg.shape[0])
    n = xg.shape[0]
    hosts = [check_features(h, f"host {i} features") for i, h in enumerate(host_xs)]
    for i, h in enumerate(hosts):
        if h.shape[0] != n:
            raise DataError("aligned rows", f"guest has {n} rows but host {i} has {h.shape[0]}")
    xg_std = with_intercept(Scaler.fit(xg).transform(xg, "guest features"))
    hs_std = [Scaler.fit(h).transform(h, f"host {i} features") for i, h in enumerate(hosts)]
    wg = np.zeros(xg_std.shape[1])
    whs = [np.zeros(h.shape[1]) for h in hs_std]
    penal = np.r_[np.ones(xg_std.shape[1] - 1), 0.0]
    ysign = 2.0 * labels - 1.0
    losses: list[float] = []
    converged = False
    epoch = 0
    for epoch in range(config.max_iter):
        lr = config.learning_rate_at(epoch)
        total = 0.0
        for rows in epoch_batches(n, config.batch_size, config.seed, epoch):
            z = xg_std[rows] @ wg + sum((h[rows] @ w for h, w in zip(hs_std, whs, strict=True)), np.zeros(rows.size))
            total += float(np.sum(LOG2 - 0.5 * ysign[rows] * z + 0.125 * z * z))
            d = 0.25 * z + 0.5 - labels[rows]
            b = rows.size
            wg = wg - lr * (xg_std[rows].T @ d / b + config.alpha * penal * wg)
            whs = [w - lr * (h[rows].T @ d / b + config.alpha * w) for h, w in zip(hs_std, whs, strict=True)]
        if config.convergence == "loss":
            losses.append(total / n)
            if len(losses) > 1 and abs(losses[-1] - losses[-2]) < config.tol:
                converged = True
                break
    return ReferenceModel(
        guest_coef=wg[:-1],
        intercept=float(wg[-1]),
        host_coefs=whs,
        loss_history=losses,
        n_iter=epoch + 1,
        converged=converged,
    )
