"""The aggregator's side of federated training: rounds of sample -> broadcast -> train -> aggregate.

Stages (each a channel namespace, so the ledger and error messages name them):

``start``
    tell every client which rounds will run (``first_round > 1`` when resuming from a checkpoint).
``moments`` (tables, optional)
    clients send per-feature count, sum and sum of squares; the aggregator returns the
    federation-wide mean and standard deviation, so every client scales its features alike.
``round-R`` for R = first_round..rounds
    1. a privacy budget (a DP wrapper around the strategy) pays for the round first, or training
       stops here with ``stop_reason`` (the previous model is the result);
    2. the strategy samples clients; every live client receives the global model, the sampled
       ones train on it, all of them evaluate it on their test rows;
    3. replies are gathered until ``round_timeout`` -- a client that does not answer in time, or
       whose node fails or disconnects, is dropped from the round (and, if its node is gone, from
       the job) -- down to the strategy's ``min_clients``;
    4. plain: the strategy aggregates the individual updates.  Secure aggregation
       (:mod:`jointly.protocols.secagg`, sub-stage ``secagg``): the aggregator gets only the sum
       of the survivors' example-weighted model *deltas* and the total example count, and hands
       their mean to the strategy as one pre-aggregated update.  Its messages ride on the round's
       own where they can, so that from round 3 on a client exchanges at most four messages per
       round (task, reply, unmasking request and answer) instead of two -- only ``threshold``
       survivors, taking turns, are asked to help unmask, the others only if one of them fails
       to answer; each reply carries the client's masked update, and fresh public keys for the
       rounds after next; when every live
       client trains in a round, its tasks carry the *next* round's roster, the clients seal their
       shares for it while they train and send them with the reply, and the next tasks relay them.
       Otherwise (round 1, client sampling, a client gone) the task carries the roster made of keys
       sent ahead and the shares are relayed while the clients train, or, without keys ahead, keys
       and shares are exchanged in the round's ``secagg`` stage;
    5. the round is checkpointed (weights, strategy and DP state, sampler state, history) so a
       crashed aggregator can resume after the last finished round.
``final``
    every live client receives the final model (they all keep it) and evaluates it.

What the aggregator learns: plain -- every sampled client's model, example count, training loss
and evaluation statistics; with secure aggregation -- only the sum of the updates, the total
example count, and each client's training loss and evaluation statistics (sums and histograms
over its test rows, no single prediction).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from jointly.channel import Channel
from jointly.errors import BudgetExhausted, ConfigError, PeerDropped, PeerTimeout, ProtocolViolation, TransportError
from jointly.learn.horizontal.messages import Final, Moments, Reply, Start, Task, check_weights, expect
from jointly.learn.horizontal.strategies.base import ClientUpdate, TooFewClients
from jointly.learn.horizontal.trainer import EvalStats, combine_eval
from jointly.progress import NullProgress, Progress, note
from jointly.protocols.secagg import (
    AdvertiseKeys,
    Roster,
    SealedShares,
    SecAggConfig,
    SecAggResult,
    ServerState,
    accept_keys,
    begin,
    collect_keys,
    finish_round,
    relay_shares,
    route_shares,
)

__all__ = ["Checkpoint", "FitResult", "RoundRecord", "ServerConfig", "run_server", "secagg_config"]

_EXPECTED_LOSS = ("loss", "accuracy", "auc")


class _Aggregator(Protocol):
    """A strategy (or a DP wrapper around one)."""

    def configure_round(self, round: int, clients: Sequence[str], rng: np.random.Generator) -> list[str]: ...
    def client_config(self, round: int) -> dict[str, bool | int | float | str]: ...
    def aggregate(
        self, round: int, global_weights: list[np.ndarray], updates: Sequence[ClientUpdate]
    ) -> list[np.ndarray]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ServerConfig:
    """How the aggregator runs the rounds.

    ``secagg``: secure aggregation on, with this Shamir threshold floor (0 = off; the actual
    threshold each round is the larger of this and a strict majority of the sampled clients).
    ``secagg_clip``: bound on each coordinate of a client's model *delta* (larger values are clipped).
    ``weighted``: weight the secure sum by example counts (off for client-side DP noise).
    """

    rounds: int
    seed: int = 0
    round_timeout: float = 600.0
    secagg: int = 0
    secagg_clip: float = 100.0
    weighted: bool = True
    standardize: bool = False
    eval_every: int = 1

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if not (self.round_timeout > 0 and self.eval_every >= 1):
            raise ConfigError("round_timeout must be positive and eval_every >= 1")
        if self.secagg and self.secagg < 2:
            raise ConfigError("the secure aggregation threshold must be at least 2")


def secagg_config(threshold: int, *, clip: float, weighted: bool, timeout: float) -> SecAggConfig:
    """The secure-aggregation parameters both sides derive for one round (they must agree exactly)."""
    return SecAggConfig(threshold=threshold, clip=clip, weighted=weighted, timeout=timeout, client_timeout=timeout * 4)


@dataclass
class RoundRecord:
    """What happened in one round; ``metrics`` evaluate the global model *after* the round."""

    round: int
    seconds: float = 0.0
    sampled: list[str] = field(default_factory=list)
    contributed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # client -> why its update was left out
    train_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    epsilon: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "round": self.round,
            "seconds": round(self.seconds, 4),
            "clients": self.sampled,
            "contributed": self.contributed,
            "dropped": self.dropped,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
        }
        if self.rejected:
            out["rejected"] = self.rejected
        if self.train_loss is not None:
            out["train_loss"] = self.train_loss
        if self.epsilon is not None:
            out["epsilon"] = self.epsilon
        out.update(self.metrics)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RoundRecord:
        metrics = {k: float(raw[k]) for k in (*_EXPECTED_LOSS, "test_rows") if k in raw}
        return cls(
            round=int(raw["round"]),
            seconds=float(raw.get("seconds", 0.0)),
            sampled=list(raw.get("clients", [])),
            contributed=list(raw.get("contributed", [])),
            dropped=list(raw.get("dropped", [])),
            rejected=dict(raw.get("rejected", {})),
            train_loss=raw.get("train_loss"),
            metrics=metrics,
            epsilon=raw.get("epsilon"),
            bytes_sent=int(raw.get("bytes_sent", 0)),
            bytes_received=int(raw.get("bytes_received", 0)),
        )


@dataclass
class FitResult:
    """The trained global model and the history of the rounds (round 0: the initial model)."""

    weights: list[np.ndarray]
    history: list[RoundRecord]
    rounds_run: int
    stop_reason: str
    dropped: dict[str, str]
    moments: tuple[np.ndarray, np.ndarray] | None = None
    startup_seconds: float = 0.0
    resumed_after: int = 0  # the checkpointed round this run continued from (0: a fresh start)


class Checkpoint:
    """Round checkpoints of the aggregator in a directory: ``weights.npz`` + ``state.json``, written atomically.

    ``fingerprint`` identifies the training setup (model, strategy, data schema); resuming from a
    checkpoint of a different setup is refused.
    """

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self.fingerprint = fingerprint

    def save(self, round: int, weights: list[np.ndarray], state: dict[str, Any]) -> None:
        tmp = self.directory.with_name(self.directory.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        with (tmp / "weights.npz").open("wb") as fh:
            np.savez(fh, *weights)
        (tmp / "state.json").write_text(json.dumps({"round": round, "fingerprint": self.fingerprint, **state}))
        old = self.directory.with_name(self.directory.name + ".old")
        if self.directory.exists():
            self.directory.rename(old)
        tmp.rename(self.directory)
        if old.exists():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()

    def load(self) -> tuple[int, list[np.ndarray], dict[str, Any]] | None:
        """``(round, weights, state)`` of the last finished round, or None if there is no checkpoint."""
        if not (self.directory / "state.json").is_file():
            return None
        try:
            state = json.loads((self.directory / "state.json").read_text())
            with np.load(self.directory / "weights.npz", allow_pickle=False) as z:
                weights = [z[f"arr_{i}"] for i in range(len(z.files))]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"checkpoint {self.directory} is unreadable: {exc}") from None
        if state.get("fingerprint") != self.fingerprint:
            raise ConfigError(f"checkpoint {self.directory} is of a different model, strategy or data schema")
        return int(state["round"]), weights, state


@dataclass
class _State:
    weights: list[np.ndarray]
    history: list[RoundRecord]
    alive: list[str]
    rng: np.random.Generator
    first_round: int = 1


def _eval_from(raw: object, sender: str, classes: int) -> EvalStats | None:
    if raw is None:
        return None
    try:
        return EvalStats.from_wire(raw, classes=classes)
    except ValueError as exc:
        raise ProtocolViolation(f"{sender!r} sent malformed evaluation statistics: {exc}") from None


class _Server:
    def __init__(
        self,
        channel: Channel,
        clients: Sequence[str],
        strategy: _Aggregator,
        weights: list[np.ndarray],
        config: ServerConfig,
        *,
        num_classes: int,
        checkpoint: Checkpoint | None,
        progress: Progress,
        extra_state: Callable[[], dict[str, Any]] | None,
    ) -> None:
        self.ch = channel
        self.clients = list(clients)
        self.strategy = strategy
        self.config = config
        self.classes = num_classes
        self.checkpoint = checkpoint
        self.progress = progress
        self.extra_state = extra_state
        self.shapes = [tuple(int(d) for d in np.shape(w)) for w in weights]
        self.state = _State(
            weights=[np.asarray(w, dtype=np.float32) for w in weights],
            history=[RoundRecord(round=0)],
            alive=list(clients),
            rng=np.random.default_rng(config.seed),
        )
        self.stop_reason = ""
        #: secure-aggregation public keys the clients sent ahead, by round and client
        self.keys_ahead: dict[int, dict[str, list[bytes]]] = {}
        #: the next round's secure aggregation when its roster went out with this round's tasks,
        #: and the sealed shares for it the clients sent back in their replies
        self.secure_ahead: ServerState | None = None
        self.shares_ahead: dict[str, object] = {}

    # -- bookkeeping ------------------------------------------------------------------------
    def resume(self, round: int, weights: list[np.ndarray], state: dict[str, Any]) -> None:
        if not 0 <= round <= self.config.rounds:
            raise ConfigError(f"the checkpoint is of round {round}; the job runs {self.config.rounds} rounds")
        self.state.weights = [np.asarray(w, dtype=np.float32) for w in weights]
        if [tuple(w.shape) for w in self.state.weights] != self.shapes:
            raise ConfigError("the checkpoint's model has different shapes")
        self.state.history = [RoundRecord.from_dict(r) for r in state.get("history", [])] or [RoundRecord(0)]
        self.state.rng.bit_generator.state = state["rng"]
        self.strategy.load_state_dict(state.get("strategy", {}))
        self.state.first_round = round + 1

    def _save(self, round: int) -> None:
        if self.checkpoint is None:
            return
        state = {
            "history": [r.to_dict() for r in self.state.history],
            "rng": self.state.rng.bit_generator.state,
            "strategy": _jsonable(self.strategy.state_dict()),
        }
        if self.extra_state is not None:
            state["extra"] = _jsonable(self.extra_state())
        self.checkpoint.save(round, self.state.weights, state)

    def _drop(self, name: str, why: str) -> None:
        if name in self.state.alive:
            self.state.alive.remove(name)
            note(self.progress, f"client {name} dropped out: {why}")

    def _send(self, ch: Channel, name: str, tag: str, value: object) -> bool:
        try:
            ch.send(name, tag, value)
            return True
        except (PeerDropped, TransportError) as exc:
            self._drop(name, str(exc))
            return False

    def _send_all(self, ch: Channel, tag: str, values: Mapping[str, object]) -> None:
        """Send each client its value concurrently; a client whose delivery fails is dropped."""
        for name, exc in ch.send_each(tag, values, tolerate=(PeerDropped, TransportError)).items():
            self._drop(name, str(exc))

    def _recv(self, ch: Channel, name: str, tag: str, deadline: float) -> object | None:
        try:
            return ch.recv(name, tag, timeout=max(0.0, deadline - time.monotonic()))
        except PeerTimeout:
            return None
        except PeerDropped as exc:
            self._drop(name, exc.reason)
            return None

    # -- stages -----------------------------------------------------------------------------
    def start(self) -> None:
        ch = self.ch.sub("start")
        msg = Start(first_round=self.state.first_round, rounds=self.config.rounds)
        for name in list(self.state.alive):
            self._send(ch, name, "plan", msg)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Federation-wide per-feature mean and standard deviation of the clients' training rows."""
        ch = self.ch.sub("moments")
        deadline = time.monotonic() + self.config.round_timeout
        got: dict[str, Moments] = {}
        for name in list(self.state.alive):
            raw = self._recv(ch, name, "local", deadline)
            if raw is not None:
                got[name] = expect(raw, Moments, name)
        if not got:
            raise TooFewClients(0, 0, 1, "clients sent feature statistics")
        width = {m.total.shape for m in got.values()} | {m.square.shape for m in got.values()}
        if len(width) != 1:
            raise ProtocolViolation("clients sent feature statistics of different widths (different columns?)")
        count = sum(int(m.count) for m in got.values())
        if count < 2:
            raise ProtocolViolation("fewer than two training rows in the whole federation")
        total = sum((m.total.astype(np.float64) for m in got.values()), np.zeros(next(iter(width))))
        square = sum((m.square.astype(np.float64) for m in got.values()), np.zeros(next(iter(width))))
        mean = total / count
        std = np.sqrt(np.maximum(square / count - mean**2, 0.0))
        std[std < 1e-12] = 1.0
        for name in list(self.state.alive):
            self._send(ch, name, "global", Moments(count=count, total=mean, square=std))
        return mean, std

    def round(self, r: int) -> bool:
        """Run round ``r``; False if training must stop before it (privacy budget)."""
        began = time.monotonic()
        traffic0 = self.ch.traffic()
        ch = self.ch.sub(f"round-{r}")
        pay = getattr(self.strategy, "begin_round", None)
        epsilon: float | None = None
        if pay is not None:
            try:
                epsilon = float(pay(r))
            except BudgetExhausted as exc:
                self.stop_reason = f"privacy budget: {exc}"
                for name in list(self.state.alive):
                    self._send(
                        ch,
                        name,
                        "task",
                        Task(round=r, train=False, evaluate=False, weights=None, stop=self.stop_reason),
                    )
                return False
        sampled = self.strategy.configure_round(r, list(self.state.alive), self.state.rng)
        threshold = 0
        if self.config.secagg:
            threshold = self._threshold(len(sampled))
        config = dict(self.strategy.client_config(r))
        evaluate = (r - 1) % self.config.eval_every == 0
        weights = self.state.weights
        secure, roster, relayed, nxt = self._secure_setup(r, ch, sampled, threshold)
        tasks = {
            name: Task(
                round=r,
                train=name in sampled,
                evaluate=evaluate,
                weights=weights,
                config=config if name in sampled else {},
                secagg_threshold=threshold if name in sampled else 0,
                secagg_roster=roster if name in sampled else None,
                secagg_shares=relayed.get(name),
                next_roster=nxt.roster if nxt is not None and name in sampled else None,
                next_threshold=nxt.config.threshold if nxt is not None and name in sampled else 0,
            )
            for name in self.state.alive
        }
        self._send_all(ch, "task", tasks)
        if secure is not None and not relayed:  # keys (unless sent ahead) and shares while the clients train
            if roster is None:
                collect_keys(ch.sub("secagg"), secure)
            relay_shares(ch.sub("secagg"), secure)
        deadline = time.monotonic() + self.config.round_timeout
        replies: dict[str, Reply] = {}
        evals: list[EvalStats] = []
        for name in [c for c in self.clients if c in self.state.alive]:
            raw = self._recv(ch, name, "reply", deadline)
            if raw is None:
                continue
            reply = expect(raw, Reply, name)
            if reply.round != r:
                raise ProtocolViolation(f"{name!r} answered round {reply.round} in round {r}")
            stats = _eval_from(reply.eval, name, self.classes)
            if stats is not None:
                evals.append(stats)
            if name in sampled:
                replies[name] = reply
            if self.config.secagg:
                self._take_ahead(r, name, reply)
        if evals:
            self.state.history[-1].metrics = combine_eval(evals)
        record = RoundRecord(round=r, sampled=list(sampled), epsilon=epsilon)
        losses = [rep.train_loss for rep in replies.values() if math.isfinite(rep.train_loss)]
        record.train_loss = float(np.mean(losses)) if losses else None
        if secure is not None:
            inputs: dict[str, object] = {n: rep.masked for n, rep in replies.items() if rep.masked is not None}
            turn = (r - 1) % len(sampled)  # clients take turns at helping unmask: only `threshold` are asked
            prefer = [*sampled[turn:], *sampled[:turn]]
            updates = self._secure(ch, r, finish_round(ch.sub("secagg"), secure, inputs, prefer=prefer), record)
        else:
            updates = []
            for name, rep in replies.items():
                try:  # a malformed or diverged (NaN) update is left out of the round, not fatal to the job
                    local = check_weights(rep.weights, self.shapes, name)
                    count = _count(rep.num_examples, name)
                except ProtocolViolation as exc:
                    record.rejected[name] = str(exc)
                    note(self.progress, f"round {r}: update of {name} rejected: {exc}")
                    continue
                updates.append(ClientUpdate(name, local, count, metrics={"train_loss": rep.train_loss}))
            record.contributed = [u.client for u in updates]
        record.dropped = [c for c in sampled if c not in record.contributed and c not in record.rejected]
        self.state.weights = [np.asarray(w, dtype=np.float32) for w in self.strategy.aggregate(r, weights, updates)]
        traffic = self.ch.traffic()
        record.bytes_sent = traffic.get("bytes_sent", 0) - traffic0.get("bytes_sent", 0)
        record.bytes_received = traffic.get("bytes_received", 0) - traffic0.get("bytes_received", 0)
        record.seconds = time.monotonic() - began
        self.state.history.append(record)
        self._save(r)
        return True

    def _secure_setup(
        self, r: int, ch: Channel, sampled: Sequence[str], threshold: int
    ) -> tuple[ServerState | None, Roster | None, dict[str, SealedShares], ServerState | None]:
        """Round ``r``'s secure aggregation and what its tasks carry: ``(state, roster, relayed, next)``.

        Newest first: the roster went out with the last tasks and every client's shares came back in
        its reply (``relayed``: each client's bundle, nothing left to exchange); or every client sent
        keys ahead (``roster`` travels with the task); or neither (keys in the ``secagg`` stage).
        ``next``: when every live client trains in this round and sent keys for the next, that
        round's state, whose roster the tasks carry (the clients seal their shares for it meanwhile).
        """
        secure_ahead, self.secure_ahead = self.secure_ahead, None
        shares_ahead, self.shares_ahead = self.shares_ahead, {}
        keys = {k: v for k, v in self.keys_ahead.items() if k > r}  # keys serve their own round or none
        keys_now, self.keys_ahead = self.keys_ahead.get(r, {}), keys
        if not self.config.secagg:
            return None, None, {}, None
        live = [c for c in sampled if c in self.state.alive]
        if len(live) < threshold:
            raise TooFewClients(r, len(live), threshold, "clients are left for secure aggregation")
        stage = f"{ch.namespace}/secagg"
        cfg = self._secagg(threshold)
        roster, relayed = None, {}
        if (
            secure_ahead is not None
            and set(secure_ahead.clients) == set(live)
            and secure_ahead.config == cfg
            and all(c in shares_ahead for c in live)
        ):
            secure = secure_ahead
            relayed = route_shares(secure, shares_ahead, party=self.ch.party, stage=stage)
        else:
            secure = begin(self.ch.party, live, self.shapes, config=cfg)
            if all(c in keys_now for c in live):
                roster = accept_keys(secure, self._advertised(keys_now, cfg), party=self.ch.party, stage=stage)
        nxt = None
        keys_next = self.keys_ahead.get(r + 1, {})
        if r < self.config.rounds and set(live) == set(self.state.alive) and all(c in keys_next for c in live):
            next_cfg = self._secagg(self._threshold(len(live)))
            nxt = begin(self.ch.party, live, self.shapes, config=next_cfg)
            accept_keys(nxt, self._advertised(keys_next, next_cfg), party=self.ch.party, stage=stage)
            del self.keys_ahead[r + 1]  # bound to this roster now
            self.secure_ahead = nxt
        return secure, roster, relayed, nxt

    @staticmethod
    def _advertised(keys: Mapping[str, list[bytes]], cfg: SecAggConfig) -> dict[str, object]:
        fingerprint = cfg.fingerprint()
        return {c: AdvertiseKeys(c_pk=k[0], s_pk=k[1], config=fingerprint) for c, k in keys.items()}

    def _take_ahead(self, r: int, name: str, reply: Reply) -> None:
        """Keep the keys a client sent ahead for later rounds and its shares for the next round's roster."""
        if reply.next_keys is not None:
            if not isinstance(reply.next_keys, dict) or not set(reply.next_keys) <= {r + 1, r + 2}:
                raise ProtocolViolation(
                    f"{name!r} sent secure-aggregation keys ahead for rounds other than the next two"
                )
            for k, pair in reply.next_keys.items():
                self.keys_ahead.setdefault(k, {})[name] = _keys_from(pair, name)
        if reply.next_shares is not None and self.secure_ahead is not None and name in self.secure_ahead.clients:
            self.shares_ahead[name] = reply.next_shares

    def _threshold(self, clients: int) -> int:
        """The secure-aggregation threshold for a round of ``clients``: the job's, and a majority at least."""
        return max(self.config.secagg, clients // 2 + 1)

    def _secagg(self, threshold: int) -> SecAggConfig:
        return secagg_config(
            threshold, clip=self.config.secagg_clip, weighted=self.config.weighted, timeout=self.config.round_timeout
        )

    def _secure(self, ch: Channel, r: int, result: SecAggResult, record: RoundRecord) -> list[ClientUpdate]:
        for name in result.dropped:
            if name in self.ch.dropped():
                self._drop(name, self.ch.dropped()[name])
        record.contributed = list(result.survivors)
        count = len(result.survivors)
        total = result.total_examples if self.config.weighted else count
        if total <= 0:
            raise ProtocolViolation(f"round {r}: the secure sum carries no examples")
        mean_delta = [s / total for s in result.sum]
        weights = [
            np.asarray(np.asarray(g, dtype=np.float64) + d, dtype=np.float32)
            for g, d in zip(self.state.weights, mean_delta, strict=True)
        ]
        examples = int(result.total_examples) if self.config.weighted else count
        return [ClientUpdate(client="secure-aggregate", weights=weights, num_examples=examples, num_clients=count)]

    def final(self) -> None:
        ch = self.ch.sub("final")
        rounds_run = self.state.history[-1].round
        msg = Final(weights=self.state.weights, rounds_run=rounds_run, stop_reason=self.stop_reason)
        self._send_all(ch, "model", dict.fromkeys(self.state.alive, msg))
        deadline = time.monotonic() + self.config.round_timeout
        evals = []
        for name in list(self.state.alive):
            raw = self._recv(ch, name, "eval", deadline)
            stats = _eval_from(raw, name, self.classes)
            if stats is not None:
                evals.append(stats)
        if evals:
            self.state.history[-1].metrics = combine_eval(evals)


def _keys_from(value: object, sender: str) -> list[bytes]:
    """The two X25519 public keys ``[c_pk, s_pk]`` a client sent ahead for its next round."""
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(k, bytes) and len(k) == 32 for k in value)):
        raise ProtocolViolation(f"{sender!r} sent malformed secure-aggregation keys ahead")
    return list(value)


def _count(value: object, sender: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProtocolViolation(f"{sender!r} reported {value!r} training examples")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def from_jsonable(value: Any) -> Any:
    """Undo :func:`_jsonable` (numpy arrays come back as arrays)."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def run_server(
    channel: Channel,
    clients: Sequence[str],
    strategy: _Aggregator,
    initial_weights: list[np.ndarray],
    config: ServerConfig,
    *,
    num_classes: int,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    on_resume: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``initial_weights`` with ``clients`` for ``config.rounds`` rounds; the aggregator's side.

    ``strategy`` is any strategy of :mod:`jointly.learn.horizontal.strategies`, optionally wrapped
    by a DP wrapper of :mod:`jointly.learn.horizontal.dp` (whose ``begin_round`` pays for a round
    before it starts).  With a ``checkpoint`` holding a finished round, training resumes after it
    (``on_resume`` receives the saved ``extra_state()``, e.g. a privacy budget).  The channel must
    tolerate the clients (:meth:`Channel.tolerate`) for drop-outs over a real transport to be survived.
    """
    if not clients or channel.party in clients:
        raise ConfigError("the aggregator needs clients other than itself")
    if config.secagg and not getattr(strategy, "is_linear", False):
        raise ConfigError(f"{type(strategy).__name__} needs individual updates; it cannot run under secure aggregation")
    progress = progress or NullProgress()
    began = time.monotonic()
    server = _Server(
        channel,
        clients,
        strategy,
        initial_weights,
        config,
        num_classes=num_classes,
        checkpoint=checkpoint,
        progress=progress,
        extra_state=extra_state,
    )
    if checkpoint is not None:
        saved = checkpoint.load()
        if saved is not None:
            round_done, weights, state = saved
            server.resume(round_done, weights, state)
            if on_resume is not None:
                on_resume(from_jsonable(state.get("extra", {})))
            note(progress, f"resuming after round {round_done} from {checkpoint.directory}")
    server.start()
    moments = server.moments() if config.standardize else None
    total = config.rounds
    startup = time.monotonic() - began
    for r in range(server.state.first_round, total + 1):
        progress.update("federated training", r - 1, total)
        if not server.round(r):
            note(progress, f"stopped before round {r}: {server.stop_reason}")
            break
        rec = server.state.history[-1]
        prev = server.state.history[-2].metrics
        shown = ", ".join(f"{k} {v:.4f}" for k, v in prev.items() if k in _EXPECTED_LOSS)
        note(
            progress,
            f"round {r}/{total}: {rec.seconds:.2f}s, {len(rec.contributed)} clients"
            + (f"; before it {shown}" if shown else ""),
        )
    progress.update("federated training", server.state.history[-1].round, total)
    server.final()
    return FitResult(
        weights=server.state.weights,
        history=server.state.history,
        rounds_run=server.state.history[-1].round,
        stop_reason=server.stop_reason,
        dropped=channel.dropped(),
        moments=moments,
        startup_seconds=startup,
        resumed_after=server.state.first_round - 1,
    )
