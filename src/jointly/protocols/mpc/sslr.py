"""Secret-shared logistic regression (SS-LR) on vertically partitioned data.

Data parties hold column blocks of the same aligned rows; one of them (the label holder) also
holds the 0/1 labels.  Each shares its block (and the labels) with the two compute parties,
which train by gradient descent entirely on shares:

``z = X w``  (a Beaver matrix product), ``p = sigma(z)``, ``g = X^T (p - y) / B``,
``w <- w - lr (g + l2 w)``

over mini-batches of ``batch_size`` consecutive rows (public positions).  ``sigma`` is
``"piecewise"`` -- ``clip(0.5 + z/4, 0, 1)`` from two ReLUs (two comparisons per row and step),
or ``"taylor"`` -- ``0.5 + z/4`` (no comparison; as in FATE's SSHE-LR; fine while ``|z| < 2``).
The intercept is a public column of ones.  Only the result parties receive the weights; the
compute parties see uniformly random shares and masked openings, the data parties nothing.
Features should be scaled (``|x| <~ 10``): fixed point has ``roles.frac_bits`` fractional bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jointly.channel import Channel
from jointly.crypto.shares import SharedTensor, decode_fixed, encode_fixed
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.protocols.mpc import compare, numeric
from jointly.protocols.mpc.engine import TwoPartyEngine, share_input
from jointly.protocols.mpc.session import MpcRoles, run_session

SIGMOIDS = ("piecewise", "taylor")


@dataclass(frozen=True)
class SslrConfig:
    """Training parameters every party passes identically.

    ``label_party``: the data party that holds the labels (``labels`` is passed there only).
    ``batch_size``: rows per gradient step (``None``: all rows).
    """

    label_party: str
    iterations: int = 20
    learning_rate: float = 0.5
    l2: float = 0.0
    batch_size: int | None = None
    fit_intercept: bool = True
    sigmoid: str = "piecewise"

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ConfigError("iterations must be a positive integer")
        if not (0 < self.learning_rate <= 10):
            raise ConfigError("learning_rate must lie in (0, 10]")
        if not 0 <= self.l2 < 10:
            raise ConfigError("l2 must lie in [0, 10)")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError("batch_size must be positive")
        if self.sigmoid not in SIGMOIDS:
            raise ConfigError(f"sigmoid must be one of {SIGMOIDS}")


@dataclass(frozen=True)
class SslrResult:
    """The trained model, as the result parties receive it.

    ``weights``: one per feature, in the order of ``roles.data`` blocks; ``blocks``: each data
    party's ``(start, stop)`` range in ``weights``.
    """

    weights: np.ndarray
    intercept: float
    blocks: dict[str, tuple[int, int]] = field(default_factory=dict)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(np.asarray(features, dtype=np.float64) @ self.weights + self.intercept, dtype=np.float64)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(1.0 / (1.0 + np.exp(-self.decision_function(features))), dtype=np.float64)


def approx_sigmoid(z: np.ndarray, kind: str) -> np.ndarray:
    """The plaintext twin of the sigmoid approximation used on shares (for tests and baselines)."""
    lin = 0.5 + 0.25 * np.asarray(z, dtype=np.float64)
    return lin if kind == "taylor" else np.clip(lin, 0.0, 1.0)


def _sigmoid(z: SharedTensor, kind: str) -> SharedTensor:
    lin = z * 0.25 + 0.5
    if kind == "taylor":
        return lin
    return compare.relu(lin) - compare.relu(lin - 1.0)


def _train(eng: TwoPartyEngine, x: SharedTensor, y: SharedTensor, cfg: SslrConfig) -> SharedTensor:
    n, d = x.shape
    w = SharedTensor.public(eng, np.zeros((d, 1)))
    batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
    starts = list(range(0, n, batch))
    for it in range(cfg.iterations):
        lo = starts[it % len(starts)]
        hi = min(lo + batch, n)
        xb, yb = x[lo:hi], y[lo:hi]
        p = _sigmoid(xb @ w, cfg.sigmoid)
        grad = numeric.div_public(xb.T @ (p - yb), hi - lo)
        if cfg.l2:
            grad = grad + w * cfg.l2
        w = w - grad * cfg.learning_rate
    return w.reshape(-1)


def train_sslr(
    channel: Channel,
    roles: MpcRoles,
    *,
    features: np.ndarray | None,
    labels: np.ndarray | None,
    config: SslrConfig,
) -> SslrResult | None:
    """Train SS-LR; runs on every party of ``roles``; returns the model on result parties, else ``None``.

    ``features``: this data party's column block (rows aligned with the others'; ``None`` or a
    ``(n, 0)`` array for a party with labels only).  ``labels``: 0/1, at ``config.label_party`` only.
    """
    roles.check(channel)
    me = channel.party
    if me not in roles.parties:
        return None
    ch = channel.sub("mpc-sslr")
    if config.label_party not in roles.data:
        raise ConfigError(f"label party {config.label_party!r} is not a data party")
    if me in roles.data and features is None and me != config.label_party:
        raise ConfigError(f"data party {me!r} passed no features")
    if me == config.label_party and labels is None:
        raise ConfigError("the label party must pass labels")
    # 1. shapes (public): rows and block widths
    shape: dict[str, tuple[int, int]] = {}
    feats = np.zeros((0, 0))
    if me in roles.data:
        feats = np.zeros((len(np.asarray(labels).reshape(-1)), 0)) if features is None else np.asarray(features)
        if feats.ndim != 2 or not np.isfinite(feats).all():
            raise DataError(me, "features must be a finite 2-d array")
        shape[me] = (int(feats.shape[0]), int(feats.shape[1]))
        ch.broadcast("shape", list(shape[me]), to=[p for p in roles.parties if p != me])
    for p in roles.data:
        if p != me:
            got = ch.recv(p, "shape")
            if not (isinstance(got, list) and len(got) == 2 and all(isinstance(v, int) and v >= 0 for v in got)):
                raise ProtocolViolation(f"{p} sent a malformed shape")
            shape[p] = (got[0], got[1])
    rows = {r for r, _ in shape.values()}
    if len(rows) != 1:
        raise DataError("features", "the data parties' rows are not aligned (different row counts)")
    n = rows.pop()
    if n == 0:
        raise DataError("features", "no rows to train on")
    # 2. shares of each block and of the labels
    blocks: list[np.ndarray] = []
    ranges: dict[str, tuple[int, int]] = {}
    at = 0
    for p in roles.data:
        width = shape[p][1]
        ranges[p] = (at, at + width)
        at += width
        if width == 0:
            continue
        mine = encode_fixed(feats, roles.frac_bits) if me == p else None
        got = share_input(ch, roles.pair, p, mine, tag=f"x/{p}")
        if got is not None:
            blocks.append(got)
    y_ring = None
    if me == config.label_party:
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        if y.size != n or not np.isin(y, (0.0, 1.0)).all():
            raise DataError(me, "labels must be 0/1, one per row")
        y_ring = encode_fixed(y.reshape(-1, 1), roles.frac_bits)
    y_share = share_input(ch, roles.pair, config.label_party, y_ring, tag="y")
    d = at

    def compute(eng: TwoPartyEngine) -> np.ndarray:
        assert y_share is not None
        parts = [eng.tensor(b) for b in blocks]
        if config.fit_intercept:
            parts.append(SharedTensor.public(eng, np.ones((n, 1))))
        x = SharedTensor.concat(parts, axis=1)
        return _train(eng, x, eng.tensor(y_share), config).share

    ring = run_session(ch, roles, compute)
    if ring is None:
        return None
    w = decode_fixed(ring, roles.frac_bits)
    if w.size != d + int(config.fit_intercept):
        raise ProtocolViolation("the compute parties returned weights of the wrong size")
    return SslrResult(weights=w[:d], intercept=float(w[d]) if config.fit_intercept else 0.0, blocks=ranges)


def train_plain(features: np.ndarray, labels: np.ndarray, config: SslrConfig) -> tuple[np.ndarray, float]:
    """The same training in float64 on pooled data (the reference the tests compare with)."""
    x = np.asarray(features, dtype=np.float64)
    if config.fit_intercept:
        x = np.hstack([x, np.ones((len(x), 1))])
    y = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    n = len(x)
    w = np.zeros((x.shape[1], 1))
    batch = n if config.batch_size is None else min(config.batch_size, n)
    starts = list(range(0, n, batch))
    for it in range(config.iterations):
        lo = starts[it % len(starts)]
        hi = min(lo + batch, n)
        p = approx_sigmoid(x[lo:hi] @ w, config.sigmoid)
        g = x[lo:hi].T @ (p - y[lo:hi]) / (hi - lo)
        w = w - config.learning_rate * (g + config.l2 * w)
    flat = w.reshape(-1)
    if config.fit_intercept:
        return flat[:-1], float(flat[-1])
    return flat, 0.0
