"""Hetero (vertical) logistic regression: a guest with labels, one or more hosts with more columns.

The guest holds the labels ``y`` and features ``X_g``; each host ``j`` holds
features ``X_j`` of the same aligned rows (after PSI).  Every party standardises
its own columns and keeps its own weights; the guest also keeps the intercept.
The model is ``P(y=1) = sigmoid(z)``, ``z = X_g w_g + b + sum_j X_j w_j``.

Training is mini-batch gradient descent on the second-order Taylor expansion of
the logistic loss at 0 (as FATE): residual ``d = 0.25 z + 0.5 - y``, gradient
``X_p^T d / b + alpha w_p``, loss ``log 2 - 0.5 y' z + 0.125 z^2`` (``y' = 2y - 1``).
:func:`reference_fit` computes exactly this in the clear; the protocols below
reproduce it up to fixed-point rounding (about ``2**-frac_bits``).  Batches are a
public permutation of the rows drawn from ``(config.seed, epoch)``.

Additive masks are uniform integers ``frac_bits`` + :data:`VALUE_BITS` +
``mask_bits`` bits wide, so a masked value tells its reader at most
``2**-mask_bits`` about the value under it (as long as ``|z|, |w| < 2**32``; beyond,
the margin shrinks by the excess bits).  Every ciphertext sent to the holder of
its private key carries fresh randomness (Paillier randomness is recoverable with
the key, and would otherwise expose the plaintext multipliers of a homomorphic
product).  Security model: semi-honest parties that do not collude.

Before training (both modes) the guest sends every other party a hello (protocol
version, mode, config digest, row count, its host order) and each host answers
with its own; any difference stops the job with a ConfigError or DataError.

Mode 1: two parties and more, no third party (``arbiter=None``)
--------------------------------------------------------------------
The guest holds the Paillier key ``G`` (public half sent to the hosts); the first
host in the guest's order, the *lead* ``L``, has a second key ``H`` (public half
sent to the guest).  Host weights never exist in the clear during
training: each host keeps ``[[w_j]]_G``.  Per mini-batch ``B`` of ``b`` rows:

1. host ``j`` -> ``L``: ``[[u_j]]_G = X_j[B] [[w_j]]_G`` (hosts other than L).
2. ``L`` -> guest: ``[[U + R]]_G`` with ``U = sum_j u_j`` and a fresh mask ``R``;
   and ``[[R]]_H``.
3. guest decrypts ``U + R``, and -> ``L``: ``[[4d + R]]_G`` (it knows ``X_g w_g``, ``y``).
4. guest -> ``L``: ``[[X_g[B]^T R + s]]_H`` (mask ``s``); ``L`` -> guest: its decryption.
   The guest now has its exact gradient ``X_g^T (4d + R) - X_g^T R`` and updates ``w_g``.
5. ``L`` computes ``[[4d]]_G = [[4d + R]]_G - R`` and -> other hosts: ``[[4d]]_G``.
6. host ``j``: ``[[g]] = X_j[B]^T [[4d]]``, ``[[P]] = (1 - lr alpha) [[w_j]] - lr/(4b) [[g]]``;
   -> guest: ``[[P + rho]]_G``; guest -> host ``j``: ``[[floor((P + rho) / 2^4f)]]_G``
   (rescaling the fixed point); the host subtracts ``floor(rho / 2^4f)``: its new
   ``[[w_j]]_G`` (off by at most one unit in the last place).
7. with ``convergence="loss"``, once per epoch: ``L`` -> guest ``[[sum(R^2 - 2 R (4d + R))]]_G``
   over the epoch, from which the guest completes the epoch's Taylor loss; guest ->
   hosts: a stop flag.
At the end each host opens its ``[[w_j + rho]]_G`` through the guest and keeps ``w_j``.

What each party learns (mode 1):

* guest: its own exact gradient per batch -- hence ``X_g[B]^T U[B]``, the same as in
  FATE -- the epoch losses, and the host feature counts; nothing else (every other
  value it decrypts is masked).
* lead host: the guest's feature count; the decryption of the guest's masked
  ``X_g^T R + s`` tells it nothing.
* every host: nothing but its final weights, the epoch count and stop flags: it
  never sees a gradient, a residual or a weight of its own in the clear, so it
  cannot run the known label-recovery attacks on per-batch host gradients.  (Its
  final weights carry what any party keeping its own LR weights learns: they
  satisfy the training's optimality condition, an aggregate over all rows.)

Mode 2: with an arbiter (``arbiter="name"``), as FATE's hetero LR
------------------------------------------------------------------------
The arbiter generates the key ``A`` (public half sent to everyone); hosts keep
``[[w_j]]_A``.  Per mini-batch:

1. host ``j`` -> guest: ``[[u_j]]_A = X_j[B] [[w_j]]_A``.
2. guest: ``[[4d]]_A = sum_j [[u_j]]_A + (X_g w_g + 2 - 4y)`` (``4d = z + 2 - 4y``);
   -> hosts: ``[[4d]]_A``.
3. guest -> arbiter: ``[[X_g[B]^T 4d + s]]_A``; arbiter -> guest: its decryption;
   the guest removes ``s`` and updates ``w_g``.
4. host ``j`` updates ``[[w_j]]_A`` as in mode-1 step 6, the arbiter rescaling under the mask.
5. with ``convergence="loss"``: guest -> arbiter ``[[U + R]]_A``; arbiter -> guest
   ``[[sum (U + R)^2]]_A``, from which the guest forms ``[[sum U^2]]`` and the encrypted
   Taylor loss of the batch; once per epoch guest -> arbiter the epoch's ``[[8 n loss]]``;
   the arbiter decrypts it, checks convergence and sends everyone the stop flag.
At the end each host opens its ``[[w_j + rho]]_A`` through the arbiter.

What each party learns (mode 2):

* guest: its own exact gradient per batch (hence ``X_g[B]^T U[B]``, as in FATE) and
  the stop flags; every host value it holds is a ciphertext under the arbiter's key.
* arbiter: the number of rows and of every party's features, and the epoch losses
  (its ``loss_history_``; the guest does not get them in this mode); every other
  value it decrypts is masked.
* hosts: nothing but their final weights and stop flags.  (FATE lets hosts see
  their plaintext gradients; this protocol does not.)

Cost per epoch of ``n`` rows, ``m_j`` host features: every host computes ``2 n m_j``
ciphertext-by-plaintext products.  Mode 1 adds ``n`` encryptions and ``n``
decryptions at the guest and ``2 n`` encryptions at the lead host; mode 2 adds only,
with ``convergence="loss"``, ``n`` encryptions at the guest and ``n`` decryptions at
the arbiter.  Everything else is per feature.

Inference (both modes): the guest sends each host a request (model id, row count,
host order); each host sends the guest its scores ``x_j . w_j`` for the requested
rows.  With two or more hosts each pair of hosts adds cancelling pseudorandom masks
(from a seed one sends the other) modulo ``2**128``, so the guest learns only
``sum_j x_j . w_j`` per row -- with one host that is that host's score, which any
guest learning the prediction could compute anyway (FATE's guest sees every host's
score).  Hosts learn the number of rows scored, nothing else.

Colluding parties learn the union of what they see; in particular the key holder
(the guest in mode 1, the arbiter in mode 2) together with any party that holds
ciphertexts under its key can decrypt them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from jointly.channel import Channel
from jointly.channel.codec import message
from jointly.errors import ConfigError, DataError, ProtocolViolation
from jointly.learn.vertical import hetero_lr_protocol as proto
from jointly.learn.vertical.hetero_lr_common import (
    FloatArray,
    HeteroLRConfig,
    ReferenceModel,
    Scaler,
    check_features,
    check_labels,
    fixed,
    reference_fit,
    with_intercept,
)
from jointly.progress import NullProgress, Progress

__all__ = [
    "MODEL_VERSION",
    "HeteroLRArbiter",
    "HeteroLRConfig",
    "HeteroLRGuest",
    "HeteroLRHost",
    "ReferenceModel",
    "reference_fit",
]

MODEL_VERSION = 1
GUEST_FORMAT = "jointly.hetero_lr.guest"
HOST_FORMAT = "jointly.hetero_lr.host"
SCORE_MODULUS = 1 << 128
_NO_PROGRESS = NullProgress()


@message("jointly.hetero_lr.PredictRequest")
@dataclass(frozen=True)
class PredictRequest:
    """The guest asks the hosts for their (masked) scores of ``n_rows`` aligned rows."""

    model_id: str
    n_rows: int
    hosts: list[str]


def _check_names(channel: Channel, **names: str | Sequence[str] | None) -> None:
    """Every named party is distinct and, except the arbiter (not needed for inference), in the job."""
    seen: list[str] = [channel.party]
    for role, value in names.items():
        if value is None:
            continue
        group = [value] if isinstance(value, str) else list(value)
        if role == "hosts" and not group:
            raise ConfigError("hetero LR needs at least one host")
        for name in group:
            if not isinstance(name, str) or (role != "arbiter" and name not in channel.parties):
                raise ConfigError(f"{role} {name!r} is not a party of this job ({', '.join(channel.parties)})")
            if name in seen:
                raise ConfigError(f"party {name!r} appears twice among guest, hosts and arbiter")
            seen.append(name)


def _check_arbiter(channel: Channel, arbiter: str | None) -> None:
    if arbiter is not None and arbiter not in channel.parties:
        raise ConfigError(f"arbiter {arbiter!r} is not a party of this job ({', '.join(channel.parties)})")


def _float_list(values: object, what: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ConfigError(f"model field {what!r} must be a list of finite numbers")
    return arr


def _check_format(data: Mapping[str, Any], fmt: str) -> None:
    if data.get("format") != fmt:
        raise ConfigError(f"not a {fmt} model (format {data.get('format')!r})")
    if data.get("version") != MODEL_VERSION:
        raise ConfigError(f"{fmt} model version {data.get('version')!r} is not supported (expected {MODEL_VERSION})")


def _mask_stream(seed: bytes, n: int) -> list[int]:
    raw = hashlib.shake_256(b"jointly.hetero_lr.predict-mask\x00" + seed).digest(16 * n)
    return [int.from_bytes(raw[16 * i : 16 * (i + 1)], "big") for i in range(n)]


class HeteroLRGuest:
    """The guest's side: labels, its features, the intercept; drives training and inference.

    ``coef_`` and ``intercept_`` apply to the guest's standardised features
    (``scaler_`` is part of the model).  Hosts must run :meth:`HeteroLRHost.fit`
    (and the arbiter :meth:`HeteroLRArbiter.fit`) at the same time as :meth:`fit`,
    and :meth:`HeteroLRHost.serve_predict` once per :meth:`predict_proba` call.
    """

    def __init__(
        self,
        config: HeteroLRConfig,
        channel: Channel,
        *,
        hosts: Sequence[str],
        arbiter: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        if isinstance(hosts, str):
            raise ConfigError("hosts must be a sequence of party names, not one string")
        _check_names(channel, hosts=hosts, arbiter=arbiter)
        self.config = config
        self.channel = channel
        self.hosts = list(hosts)
        self.arbiter = arbiter
        self.progress = progress or _NO_PROGRESS
        self.model_id_: str | None = None
        self.scaler_: Scaler | None = None
        self.coef_ = np.zeros(0)
        self.intercept_ = 0.0
        self.n_iter_ = 0
        self.converged_ = False
        self.loss_history_: list[float] = []
        self._predictions = 0

    def fit(self, X: ArrayLike, y: ArrayLike) -> HeteroLRGuest:
        _check_arbiter(self.channel, self.arbiter)
        x = check_features(X, "guest features")
        labels = check_labels(y, x.shape[0])
        scaler = Scaler.fit(x)
        xs = with_intercept(scaler.transform(x, "guest features"))
        ch = self.channel.sub("hetero_lr")
        mode = proto.TWO_PARTY if self.arbiter is None else proto.ARBITER
        proto.guest_hello(ch, self.config, mode, x.shape[0], self.hosts, self.arbiter)
        if self.arbiter is None:
            result = proto.guest_two_party(ch, self.config, xs, labels, self.hosts, self.progress)
        else:
            result = proto.guest_with_arbiter(ch, self.config, xs, labels, self.hosts, self.arbiter, self.progress)
        model_id = secrets.token_hex(16)
        ch.broadcast("model_id", model_id, to=self.hosts)
        self.model_id_ = model_id
        self.scaler_ = scaler
        self.coef_ = result.weights[:-1]
        self.intercept_ = float(result.weights[-1])
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.loss_history_ = result.loss_history
        return self

    def decision_function(self, X: ArrayLike) -> FloatArray:
        """The joint score ``z`` of every row; the hosts must serve this request."""
        if self.model_id_ is None or self.scaler_ is None:
            raise ConfigError("HeteroLRGuest is not fitted; call fit() or from_dict() first")
        xs = self.scaler_.transform(check_features(X, "guest features"), "guest features")
        n = xs.shape[0]
        f = self.config.frac_bits
        ch = self.channel.sub("hetero_lr-predict").sub(self._predictions)
        self._predictions += 1
        ch.broadcast("request", PredictRequest(self.model_id_, n, self.hosts), to=self.hosts)
        total = [int(v) for v in fixed(xs @ self.coef_ + self.intercept_, f)]
        for host in self.hosts:
            scores = ch.recv(host, "scores")
            if not (isinstance(scores, np.ndarray) and scores.dtype == object and scores.shape == (n,)):
                raise ProtocolViolation(f"host {host!r} sent malformed scores for {n} rows")
            values = scores.tolist()
            if not all(isinstance(v, int) and 0 <= v < SCORE_MODULUS for v in values):
                raise ProtocolViolation(f"host {host!r} sent scores outside [0, 2**128)")
            total = [t + s for t, s in zip(total, values, strict=True)]
        half = SCORE_MODULUS // 2
        signed = [(t + half) % SCORE_MODULUS - half for t in total]
        return np.array([v / (1 << f) for v in signed], dtype=np.float64)

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """``(n, 2)`` class probabilities, scikit-learn style; the hosts must serve this request."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class labels 0/1 (1 when the probability is above 0.5)."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def to_dict(self) -> dict[str, object]:
        """The guest's model part as JSON-safe values (no host weights: it has none)."""
        if self.model_id_ is None or self.scaler_ is None:
            raise ConfigError("HeteroLRGuest is not fitted")
        return {
            "format": GUEST_FORMAT,
            "version": MODEL_VERSION,
            "model_id": self.model_id_,
            "config": self.config.to_dict(),
            "hosts": list(self.hosts),
            "arbiter": self.arbiter,
            "scaler": self.scaler_.to_dict(),
            "coef": [float(v) for v in self.coef_],
            "intercept": self.intercept_,
            "n_iter": self.n_iter_,
            "converged": self.converged_,
            "loss_history": [float(v) for v in self.loss_history_],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], channel: Channel, *, progress: Progress | None = None) -> HeteroLRGuest:
        _check_format(data, GUEST_FORMAT)
        try:
            config = HeteroLRConfig.from_dict(data["config"])
            model = cls(config, channel, hosts=list(data["hosts"]), arbiter=data["arbiter"], progress=progress)
            model.scaler_ = Scaler.from_dict(data["scaler"])
            model.coef_ = _float_list(data["coef"], "coef")
            model.intercept_ = float(data["intercept"])
            model.n_iter_ = int(data["n_iter"])
            model.converged_ = bool(data["converged"])
            model.loss_history_ = [float(v) for v in data["loss_history"]]
            model_id = data["model_id"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed {GUEST_FORMAT} model: {exc}") from exc
        if model.coef_.shape != model.scaler_.mean.shape or not isinstance(model_id, str):
            raise ConfigError(f"malformed {GUEST_FORMAT} model: coef and scaler disagree")
        model.model_id_ = model_id
        return model


class HeteroLRHost:
    """A host's side: its features and, after training, its own weights (``coef_``, on standardised columns)."""

    def __init__(
        self,
        config: HeteroLRConfig,
        channel: Channel,
        *,
        guest: str,
        arbiter: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        _check_names(channel, guest=guest, arbiter=arbiter)
        self.config = config
        self.channel = channel
        self.guest = guest
        self.arbiter = arbiter
        self.progress = progress or _NO_PROGRESS
        self.model_id_: str | None = None
        self.scaler_: Scaler | None = None
        self.coef_ = np.zeros(0)
        self.n_iter_ = 0
        self.converged_ = False
        self._served = 0

    def fit(self, X: ArrayLike) -> HeteroLRHost:
        _check_arbiter(self.channel, self.arbiter)
        x = check_features(X, "host features")
        scaler = Scaler.fit(x)
        xs = scaler.transform(x, "host features")
        ch = self.channel.sub("hetero_lr")
        mode = proto.TWO_PARTY if self.arbiter is None else proto.ARBITER
        hosts = proto.host_hello(ch, self.config, mode, x.shape[0], self.guest)
        if self.arbiter is None:
            result = proto.host_two_party(ch, self.config, xs, self.guest, hosts, self.progress)
        else:
            result = proto.host_with_arbiter(ch, self.config, xs, self.guest, self.arbiter, self.progress)
        model_id = ch.recv(self.guest, "model_id")
        if not isinstance(model_id, str) or len(model_id) != 32:
            raise ProtocolViolation(f"the guest {self.guest!r} sent a malformed model id")
        self.model_id_ = model_id
        self.scaler_ = scaler
        self.coef_ = result.weights
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        return self

    def serve_predict(self, X: ArrayLike) -> int:
        """Answer one :meth:`HeteroLRGuest.predict_proba` call for the same aligned rows; returns the row count."""
        if self.model_id_ is None or self.scaler_ is None:
            raise ConfigError("HeteroLRHost is not fitted; call fit() or from_dict() first")
        xs = self.scaler_.transform(check_features(X, "host features"), "host features")
        ch = self.channel.sub("hetero_lr-predict").sub(self._served)
        self._served += 1
        req = ch.recv(self.guest, "request")
        if not isinstance(req, PredictRequest):
            raise ProtocolViolation(f"the guest {self.guest!r} sent a malformed prediction request")
        if not (isinstance(req.hosts, list) and isinstance(req.n_rows, int) and self.channel.party in req.hosts):
            raise ProtocolViolation(f"the guest {self.guest!r} sent a malformed prediction request")
        if req.model_id != self.model_id_:
            raise ConfigError(f"the guest predicts with model {req.model_id!r}, this host holds {self.model_id_!r}")
        if req.n_rows != xs.shape[0]:
            raise DataError("aligned rows", f"the guest asks for {req.n_rows} rows, this host has {xs.shape[0]}")
        scores = [int(v) for v in fixed(xs @ self.coef_, self.config.frac_bits)]
        me = req.hosts.index(self.channel.party)
        for other in req.hosts[me + 1 :]:
            seed = secrets.token_bytes(32)
            ch.send(other, "seed", seed)
            scores = [s + m for s, m in zip(scores, _mask_stream(seed, len(scores)), strict=True)]
        for other in req.hosts[:me]:
            theirs = ch.recv(other, "seed")
            if not isinstance(theirs, bytes) or len(theirs) != 32:
                raise ProtocolViolation(f"host {other!r} sent a malformed mask seed")
            scores = [s - m for s, m in zip(scores, _mask_stream(theirs, len(scores)), strict=True)]
        out = np.empty(len(scores), dtype=object)
        out[:] = [s % SCORE_MODULUS for s in scores]
        ch.send(self.guest, "scores", out)
        return len(scores)

    def to_dict(self) -> dict[str, object]:
        """The host's model part as JSON-safe values."""
        if self.model_id_ is None or self.scaler_ is None:
            raise ConfigError("HeteroLRHost is not fitted")
        return {
            "format": HOST_FORMAT,
            "version": MODEL_VERSION,
            "model_id": self.model_id_,
            "config": self.config.to_dict(),
            "guest": self.guest,
            "arbiter": self.arbiter,
            "scaler": self.scaler_.to_dict(),
            "coef": [float(v) for v in self.coef_],
            "n_iter": self.n_iter_,
            "converged": self.converged_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], channel: Channel, *, progress: Progress | None = None) -> HeteroLRHost:
        _check_format(data, HOST_FORMAT)
        try:
            config = HeteroLRConfig.from_dict(data["config"])
            model = cls(config, channel, guest=data["guest"], arbiter=data["arbiter"], progress=progress)
            model.scaler_ = Scaler.from_dict(data["scaler"])
            model.coef_ = _float_list(data["coef"], "coef")
            model.n_iter_ = int(data["n_iter"])
            model.converged_ = bool(data["converged"])
            model_id = data["model_id"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed {HOST_FORMAT} model: {exc}") from exc
        if model.coef_.shape != model.scaler_.mean.shape or not isinstance(model_id, str):
            raise ConfigError(f"malformed {HOST_FORMAT} model: coef and scaler disagree")
        model.model_id_ = model_id
        return model


class HeteroLRArbiter:
    """The arbiter of mode 2: holds the Paillier key, opens masked values, decides convergence; keeps no model."""

    def __init__(
        self,
        config: HeteroLRConfig,
        channel: Channel,
        *,
        guest: str,
        hosts: Sequence[str],
        progress: Progress | None = None,
    ) -> None:
        if isinstance(hosts, str):
            raise ConfigError("hosts must be a sequence of party names, not one string")
        _check_names(channel, guest=guest, hosts=hosts)
        self.config = config
        self.channel = channel
        self.guest = guest
        self.hosts = list(hosts)
        self.progress = progress or _NO_PROGRESS
        self.n_iter_ = 0
        self.converged_ = False
        self.loss_history_: list[float] = []

    def fit(self) -> HeteroLRArbiter:
        ch = self.channel.sub("hetero_lr")
        n_rows, hosts = proto.arbiter_hello(ch, self.config, self.guest, self.hosts)
        result = proto.arbiter(ch, self.config, self.guest, hosts, n_rows, self.progress)
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.loss_history_ = result.loss_history
        return self
