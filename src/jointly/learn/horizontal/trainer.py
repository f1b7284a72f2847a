"""Local training and evaluation of one horizontal-FL client's model on its own rows (plain torch).

A client trains the global model it received on its private examples for a few local epochs and
returns its new weights; it evaluates a model on its private test rows and returns *sufficient
statistics* (example count, summed loss, correct predictions, per-class score histograms), so the
aggregator can combine the clients' statistics into the federation-wide loss, accuracy and AUC of
the union of their test sets without seeing a single prediction.

Nothing here talks to other parties: :mod:`jointly.learn.horizontal.client` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from jointly.errors import ConfigError, DataError
from jointly.learn.horizontal.models import get_weights, set_weights

if TYPE_CHECKING:
    from jointly.learn.horizontal.dpsgd import DpSgdSession

__all__ = ["EvalStats", "LocalData", "TrainConfig", "Trainer", "auc_from_histograms", "combine_eval", "round_seed"]

HIST_BINS = 100


@dataclass(frozen=True)
class LocalData:
    """One client's rows: float32 inputs (``(n, features)`` or ``(n, channels, h, w)``) and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for x, y, name in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if len(x) != len(y):
                raise DataError(name, f"{len(x)} inputs but {len(y)} labels")
        if len(self.x_train) == 0:
            raise DataError("train", "no training rows")
        if self.x_train.shape[1:] != self.x_test.shape[1:] and len(self.x_test):
            raise DataError(
                "test", f"test rows have shape {self.x_test.shape[1:]}, training rows {self.x_train.shape[1:]}"
            )

    @property
    def num_train(self) -> int:
        return len(self.x_train)


@dataclass(frozen=True)
class TrainConfig:
    """How a client trains locally each round (the same for every client of a job)."""

    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    optimizer: str = "sgd"  # or "adam"
    proximal_mu: float = 0.0  # FedProx: mu/2 * ||w - w_global||^2 added to the local loss
    threads: int | None = None  # torch intra-op threads (None: torch's default)

    def __post_init__(self) -> None:
        if self.local_epochs < 1 or self.batch_size < 1:
            raise ConfigError("local_epochs and batch_size must be positive")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.proximal_mu < 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ConfigError("proximal_mu, momentum and weight_decay must be >= 0")


@dataclass(frozen=True)
class EvalStats:
    """Sufficient statistics of one evaluation: combine with :func:`combine_eval`.

    ``pos_hist[c, b]`` / ``neg_hist[c, b]``: how many examples of class ``c`` (resp. not of class
    ``c``) got a predicted probability of ``c`` in bin ``b`` of ``HIST_BINS`` equal bins (one row for
    a single-logit binary model).  They reveal the score distribution, not which example got which score.
    """

    n: int
    loss_sum: float
    correct: int
    pos_hist: np.ndarray
    neg_hist: np.ndarray

    def to_wire(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "pos": self.pos_hist,
            "neg": self.neg_hist,
        }

    @classmethod
    def from_wire(cls, raw: object, *, classes: int) -> EvalStats:
        """Check and rebuild what a client sent (a ``ProtocolViolation``-worthy problem raises ``ValueError``)."""
        if not isinstance(raw, dict):
            raise ValueError("evaluation statistics must be a mapping")
        n, loss_sum, correct = raw.get("n"), raw.get("loss_sum"), raw.get("correct")
        pos, neg = raw.get("pos"), raw.get("neg")
        rows = 1 if classes == 1 else classes
        if not (isinstance(n, int) and isinstance(correct, int) and 0 <= correct <= n):
            raise ValueError("malformed example counts")
        if not (isinstance(loss_sum, float | int) and not math.isnan(loss_sum) and loss_sum >= 0):
            raise ValueError("malformed loss")  # +inf is a diverged model's honest loss
        hists = [_check_hist(h, rows=rows, n=n) for h in (pos, neg)]
        return cls(n=n, loss_sum=float(loss_sum), correct=correct, pos_hist=hists[0], neg_hist=hists[1])


def _check_hist(h: object, *, rows: int, n: int) -> np.ndarray:
    if not (isinstance(h, np.ndarray) and h.shape == (rows, HIST_BINS) and h.dtype.kind in "iu"):
        raise ValueError("malformed score histograms")
    if (h < 0).any() or int(h.sum()) > n * rows:
        raise ValueError("score histograms do not match the example count")
    return h.astype(np.int64)


def round_seed(seed: int, index: int, round: int) -> int:
    """The local-training seed of client ``index`` (its position in the job) in ``round`` of a job seeded ``seed``."""
    if index < 0:
        raise ConfigError("client index must be >= 0")
    return (seed * 1_000_003 + round * 1009 + index) % (1 << 63)


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve from score histograms (ties within a bin count one half); NaN if undefined."""
    p = np.asarray(pos, dtype=np.float64)
    q = np.asarray(neg, dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    below = np.concatenate([[0.0], np.cumsum(q)[:-1]])  # negatives in lower bins
    return float((p * (below + 0.5 * q)).sum() / (p.sum() * q.sum()))


def combine_eval(stats: Sequence[EvalStats]) -> dict[str, float]:
    """Loss, accuracy and AUC (macro one-vs-rest for several classes) of the union of the clients' test rows."""
    n = sum(s.n for s in stats)
    if n == 0:
        return {}
    pos = sum((s.pos_hist for s in stats), np.zeros_like(stats[0].pos_hist))
    neg = sum((s.neg_hist for s in stats), np.zeros_like(stats[0].neg_hist))
    aucs = [auc_from_histograms(pos[c], neg[c]) for c in range(pos.shape[0])]
    aucs = [a for a in aucs if not math.isnan(a)]
    out = {"loss": sum(s.loss_sum for s in stats) / n, "accuracy": sum(s.correct for s in stats) / n, "test_rows": n}
    if aucs:
        out["auc"] = float(np.mean(aucs))
    return out


class Trainer:
    """Trains and evaluates one model family on one client's :class:`LocalData`.

    ``model`` is built once (from the job's model spec) and reused every round: the global
    weights are loaded into it, so the client never keeps a second copy of the network.
    """

    def __init__(
        self,
        model: nn.Module,
        data: LocalData,
        config: TrainConfig,
        *,
        num_classes: int,
        dpsgd: DpSgdSession | None = None,
    ) -> None:
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        labels = np.concatenate([data.y_train, data.y_test])
        top = 2 if num_classes == 1 else num_classes
        if labels.size and (labels.min() < 0 or labels.max() >= top):
            bad = int(labels[(labels < 0) | (labels >= top)][0])
            raise DataError("labels", f"label {bad} is outside [0, {top}) for a model with num_classes={num_classes}")
        self.model = model
        self.data = data
        self.config = config
        self.num_classes = num_classes
        self.dpsgd = dpsgd
        if config.threads:
            torch.set_num_threads(config.threads)
        self._x = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32))
        self._y = torch.from_numpy(np.ascontiguousarray(data.y_train, dtype=np.int64))
        self._xt = torch.from_numpy(np.ascontiguousarray(data.x_test, dtype=np.float32))
        self._yt = torch.from_numpy(np.ascontiguousarray(data.y_test, dtype=np.int64))

    def initial_weights(self) -> list[np.ndarray]:
        """The model's current weights (the shapes every message must match)."""
        return get_weights(self.model)

    def standardize(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Scale every input feature to ``(x - mean) / std`` (federation-wide moments, flattened features)."""
        for name in ("_x", "_xt"):
            t: torch.Tensor = getattr(self, name)
            flat = t.reshape(len(t), -1)
            scaled = (flat - torch.from_numpy(mean.astype(np.float32))) / torch.from_numpy(std.astype(np.float32))
            setattr(self, name, scaled.reshape(t.shape).contiguous())

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.num_classes == 1:
            return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), y.to(logits.dtype))
        return nn.functional.cross_entropy(logits, y)

    def fit(
        self, weights: Sequence[np.ndarray], *, seed: int, epochs: int | None = None, proximal_mu: float | None = None
    ) -> tuple[list[np.ndarray], float]:
        """Train from ``weights`` for ``epochs`` (default: the config's); returns the new weights and mean loss.

        ``proximal_mu`` (FedProx, default: the config's) adds ``mu/2 * ||w - weights||^2`` to the loss.
        """
        set_weights(self.model, weights)
        cfg = self.config
        epochs = epochs or cfg.local_epochs
        mu = cfg.proximal_mu if proximal_mu is None else proximal_mu
        if not (math.isfinite(mu) and mu >= 0):
            raise ConfigError(f"proximal_mu must be >= 0, got {mu}")
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # dropout
        anchor = [p.detach().clone() for p in self.model.parameters()] if mu > 0 else None
        self.model.train()
        if self.dpsgd is not None:
            proximal = (mu, anchor) if anchor is not None else None
            mean_loss = self.dpsgd.train(
                self.model,
                self._x,
                self._y,
                loss_fn=self.loss,
                epochs=epochs,
                lr=cfg.lr,
                momentum=cfg.momentum,
                weight_decay=cfg.weight_decay,
                proximal=proximal,
                generator=gen,
            )
            return get_weights(self.model), mean_loss
        params = list(self.model.parameters())
        step = _adam(params, cfg) if cfg.optimizer == "adam" else _sgd(params, cfg)
        n = len(self._x)
        total, count = 0.0, 0
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                if len(idx) < 2 and n >= 2:  # a batch of one breaks batch norm; fold it into the epoch's end
                    continue
                for p in params:
                    p.grad = None
                loss = self.loss(self.model(self._x[idx]), self._y[idx])
                if anchor is not None:
                    prox = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor, strict=True))
                    loss = loss + 0.5 * mu * prox
                loss.backward()  # type: ignore[no-untyped-call]
                step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
        return get_weights(self.model), total / max(count, 1)

    def evaluate(self, weights: Sequence[np.ndarray] | None = None, *, on: str = "test") -> EvalStats:
        """Statistics of the model (with ``weights`` loaded, if given) on this client's test (or train) rows."""
        if weights is not None:
            set_weights(self.model, weights)
        x, y = (self._xt, self._yt) if on == "test" else (self._x, self._y)
        rows = 1 if self.num_classes == 1 else self.num_classes
        pos = np.zeros((rows, HIST_BINS), dtype=np.int64)
        neg = np.zeros((rows, HIST_BINS), dtype=np.int64)
        if len(x) == 0:
            return EvalStats(0, 0.0, 0, pos, neg)
        self.model.eval()
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(x), 1024):
                xb, yb = x[start : start + 1024], y[start : start + 1024]
                logits = self.model(xb)
                batch_loss = float(self.loss(logits, yb))
                loss_sum += batch_loss * len(xb) if math.isfinite(batch_loss) else math.inf
                logits = torch.nan_to_num(logits, nan=0.0, posinf=1e4, neginf=-1e4)  # a diverged model still scores
                if self.num_classes == 1:
                    prob = torch.sigmoid(logits.reshape(-1)).numpy()[:, None]
                    pred = (prob[:, 0] >= 0.5).astype(np.int64)
                    onehot = yb.numpy()[:, None] == 1
                else:
                    prob = torch.softmax(logits, dim=1).numpy()
                    pred = prob.argmax(axis=1)
                    onehot = yb.numpy()[:, None] == np.arange(rows)[None, :]
                correct += int((pred == yb.numpy()).sum())
                bins = np.clip((prob * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1)
                for c in range(rows):
                    pos[c] += np.bincount(bins[onehot[:, c], c], minlength=HIST_BINS)
                    neg[c] += np.bincount(bins[~onehot[:, c], c], minlength=HIST_BINS)
        return EvalStats(len(x), loss_sum, correct, pos, neg)


def _sgd(params: Sequence[torch.Tensor], cfg: TrainConfig) -> Callable[[], None]:
    """One step of SGD with momentum and weight decay, as ``torch.optim.SGD`` (no dampening, not Nesterov).

    Written out because constructing a ``torch.optim`` optimizer imports ``torch._dynamo`` (seconds
    of start-up in every client process); plain SGD needs none of it.
    """
    bufs: list[torch.Tensor | None] = [None] * len(params)

    @torch.no_grad()
    def step() -> None:
        for i, p in enumerate(params):
            if p.grad is None:
                continue
            d = p.grad if cfg.weight_decay == 0 else p.grad.add(p, alpha=cfg.weight_decay)
            if cfg.momentum:
                buf = bufs[i]
                if buf is None:
                    buf = bufs[i] = d.detach().clone()
                else:
                    buf.mul_(cfg.momentum).add_(d)
                d = buf
            p.add_(d, alpha=-cfg.lr)

    return step


def _adam(params: Sequence[torch.Tensor], cfg: TrainConfig) -> Callable[[], None]:
    opt = torch.optim.Adam(list(params), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return lambda: opt.step() and None
