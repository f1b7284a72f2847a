"""A client's side of federated training: receive the global model, train on private rows, send an update.

See :mod:`jointly.learn.horizontal.server` for the stages.  A client talks only to the aggregator.
What leaves the client each round: plain -- its new local model, its training example count, its
mean training loss and evaluation statistics of the global model on its test rows; with secure
aggregation -- its update only inside a masked vector (the aggregator learns the sum over all
surviving clients), plus the loss and evaluation statistics.  With ``dp_client`` the update is
clipped and carries this client's share of the Gaussian noise before it leaves.  With DP-SGD
(the trainer's ``dpsgd`` session) every update is example-level private for this client's rows.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from jointly.channel import Channel
from jointly.errors import ProtocolViolation
from jointly.learn.horizontal.messages import Final, Moments, Reply, Start, Task, check_weights, expect
from jointly.learn.horizontal.server import secagg_config
from jointly.learn.horizontal.trainer import Trainer, round_seed
from jointly.progress import NullProgress, Progress
from jointly.protocols.secagg import (
    UNMASK_REQUEST,
    ClientState,
    SealedShares,
    SecAggConfig,
    accept_roster,
    mask,
    open_shares,
    precompute_mask,
    prepare,
    public_keys,
    reply_unmask,
    seal_shares,
    send_shares,
    share_when_ready,
)

__all__ = ["ClientResult", "ClientSettings", "local_moments", "run_client"]

UpdateFilter = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class ClientSettings:
    """What a client checks and derives from the job (the same on every client).

    ``secagg``: the smallest secure-aggregation threshold this client accepts (0: secure
    aggregation off; a task asking for it is then refused, and so is one that asks for less).
    """

    seed: int = 0
    index: int = 0
    secagg: int = 0
    secagg_clip: float = 100.0
    weighted: bool = True
    round_timeout: float = 600.0
    standardize: bool = False


@dataclass
class ClientResult:
    weights: list[np.ndarray]
    rounds_trained: int
    rounds_run: int
    stop_reason: str
    moments: tuple[np.ndarray, np.ndarray] | None


class _Background:
    """Run ``fn(*args)`` on a daemon thread; :meth:`wait` joins it and returns what it returned (or re-raises)."""

    def __init__(self, fn: Callable[..., object], *args: object) -> None:
        self._error: Exception | None = None
        self._result: object = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="fl-secagg-share", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            self._result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the caller by wait()
            self._error = exc

    def wait(self) -> object:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _share_for(channel: Channel, state: ClientState, roster: object) -> None:
    accept_roster(state, roster, stage=channel.namespace)
    send_shares(channel, state)


def _seal_for(state: ClientState, roster: object, stage: str) -> SealedShares:
    accept_roster(state, roster, stage=stage)
    return seal_shares(state)


class _KeysAhead:
    """Secure-aggregation states made before their round: keys sent ahead, maybe a roster and our shares too.

    Each reply announces fresh keys for the next two rounds that have none yet, so the task before a
    round can carry its roster; a state serves its own round or none (it is dropped when the round comes).
    """

    def __init__(self, name: str, server: str, settings: ClientSettings, last_round: int) -> None:
        self.name, self.server, self.settings, self.last_round = name, server, settings, last_round
        self.states: dict[int, ClientState] = {}

    def take(self, r: int) -> ClientState | None:
        """The state made ahead for round ``r`` (if any); states of earlier rounds are dropped."""
        state = self.states.pop(r, None)
        self.states = {k: v for k, v in self.states.items() if k > r}
        return state

    def fresh(self, r: int) -> dict[int, list[bytes]] | None:
        """Public keys of new states for rounds ``r+1`` and ``r+2`` that have none yet (for round ``r``'s reply)."""
        if not self.settings.secagg:
            return None
        out = {}
        for k in (r + 1, r + 2):
            if k <= self.last_round and k not in self.states:
                cfg = self.config(self.settings.secagg)  # the roster's threshold replaces it
                self.states[k] = ClientState(name=self.name, server=self.server, config=cfg)
                out[k] = list(public_keys(self.states[k]))
        return out or None

    def config(self, threshold: int) -> SecAggConfig:
        s = self.settings
        return secagg_config(threshold, clip=s.secagg_clip, weighted=s.weighted, timeout=s.round_timeout)


def local_moments(x: np.ndarray) -> Moments:
    """Count, sum and sum of squares of each column of this client's training rows (for standardisation)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return Moments(count=len(flat), total=flat.sum(axis=0), square=(flat**2).sum(axis=0))


def _secagg_round(
    sa: Channel, task: Task, settings: ClientSettings, made_ahead: ClientState | None, ahead: _KeysAhead
) -> tuple[ClientState | None, _Background | None, _Background | None]:
    """Set up this round's secure aggregation from the task: ``(state, sharing, sealing_next)``.

    Three ways, newest first: the roster and our shares went ahead (the task relays the others'
    shares: nothing more to send); the roster travels with the task (our shares go on a thread while
    we train); neither (keys now, then roster and shares on a thread).  ``sealing_next`` seals our
    shares for the next round's roster, if the task carries one, on a thread; its result rides in
    this round's reply.
    """
    server = ahead.server
    if not task.secagg_threshold:
        if task.secagg_roster is not None or task.secagg_shares is not None or task.next_roster is not None:
            raise ProtocolViolation(f"{server!r} sent secure-aggregation material for a plain round")
        return None, None, None
    if not settings.secagg or task.secagg_threshold < settings.secagg:
        raise ProtocolViolation(
            f"{server!r} asked for secure aggregation with threshold {task.secagg_threshold}; "
            f"this job allows {'none' if not settings.secagg else f'at least {settings.secagg}'}"
        )
    cfg = ahead.config(task.secagg_threshold)
    secure: ClientState
    sharing = None
    if task.secagg_shares is not None:  # roster in the last task, our shares in the last reply
        if made_ahead is None or made_ahead.roster is None or not made_ahead.own_shares or made_ahead.config != cfg:
            raise ProtocolViolation(f"{server!r} relayed shares for a roster this client did not accept ahead")
        secure = made_ahead
        open_shares(secure, task.secagg_shares, stage=sa.namespace)
    elif task.secagg_roster is not None:  # made of keys we sent ahead: our shares on a thread
        if made_ahead is None or made_ahead.roster is not None:
            raise ProtocolViolation(f"{server!r} sent a roster for keys this client did not send ahead")
        secure = dataclasses.replace(made_ahead, config=cfg)
        sharing = _Background(_share_for, sa, secure, task.secagg_roster)
    else:  # keys now; the roster and our shares on a thread
        secure = prepare(sa, server, config=cfg, share=False)
        sharing = _Background(share_when_ready, sa, secure)
    sealing_next = None
    if task.next_roster is not None:
        if task.next_threshold < settings.secagg:
            raise ProtocolViolation(
                f"{server!r} announced a next round with threshold {task.next_threshold}; "
                f"this job allows at least {settings.secagg}"
            )
        nxt = ahead.states.get(task.round + 1)
        if nxt is None or nxt.roster is not None:
            raise ProtocolViolation(f"{server!r} sent a next-round roster for keys this client did not send ahead")
        nxt = ahead.states[task.round + 1] = dataclasses.replace(nxt, config=ahead.config(task.next_threshold))
        sealing_next = _Background(_seal_for, nxt, task.next_roster, sa.namespace)
    return secure, sharing, sealing_next


def run_client(
    channel: Channel,
    server: str,
    trainer: Trainer,
    settings: ClientSettings,
    *,
    dp_client: UpdateFilter | None = None,
    progress: Progress | None = None,
    on_round: Callable[[int], None] | None = None,
) -> ClientResult:
    """This client's side of federated training until the aggregator sends the final model.

    When the job standardises features, the trainer's rows are rescaled with the federation-wide
    mean and standard deviation before the first round.
    ``on_round(r)`` runs after each round this client took part in (e.g. to checkpoint DP-SGD state).
    """
    progress = progress or NullProgress()
    start = expect(channel.sub("start").recv(server, "plan"), Start, server)
    if not (1 <= start.first_round <= start.rounds + 1):
        raise ProtocolViolation(f"{server!r} announced rounds {start.first_round}..{start.rounds}")
    moments = None
    if settings.standardize:
        ch = channel.sub("moments")
        ch.send(server, "local", local_moments(trainer.data.x_train))
        glob = expect(ch.recv(server, "global"), Moments, server)
        width = trainer.data.x_train.reshape(len(trainer.data.x_train), -1).shape[1]
        if glob.total.shape != (width,) or glob.square.shape != (width,) or not np.isfinite(glob.square).all():
            raise ProtocolViolation(f"{server!r} sent feature statistics of the wrong width")
        moments = (glob.total, glob.square)
        trainer.standardize(*moments)
    shapes = [tuple(int(d) for d in w.shape) for w in trainer.initial_weights()]
    trained = 0
    stop = ""
    last = start.first_round - 1
    ahead = _KeysAhead(channel.party, server, settings, start.rounds)
    premasking: _Background | None = None  # the next round's masks, made while we wait for its task
    early: object = None  # the next message, received while waiting for a request to help unmask
    for r in range(start.first_round, start.rounds + 1):
        ch = channel.sub(f"round-{r}")
        task = expect(ch.recv(server, "task") if early is None else early, Task, server)
        early = None
        if task.round != r:
            raise ProtocolViolation(f"{server!r} sent the task of round {task.round} in round {r}")
        if task.stop:
            stop = task.stop
            break
        last = r
        progress.update("federated training", r - 1, start.rounds)
        weights = check_weights(task.weights, shapes, server)
        made_ahead = ahead.take(r)  # keys (maybe roster and shares) sent ahead serve this round or none
        if not task.train:
            if task.secagg_threshold or task.secagg_roster or task.secagg_shares or task.next_roster:
                raise ProtocolViolation(f"{server!r} sent secure-aggregation material to a client it did not sample")
            stats = trainer.evaluate(weights).to_wire() if task.evaluate else None
            reply = Reply(
                round=r, num_examples=0, weights=None, train_loss=math.nan, eval=stats, next_keys=ahead.fresh(r)
            )
            ch.send(server, "reply", reply)
            continue
        sa = ch.sub("secagg")
        secure, sharing, sealing_next = _secagg_round(sa, task, settings, made_ahead, ahead)
        stats = trainer.evaluate(weights).to_wire() if task.evaluate else None
        epochs = task.config.get("local_epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 1000:
            raise ProtocolViolation(f"{server!r} asked for local_epochs={epochs!r}")
        mu = task.config.get("proximal_mu", 0.0)
        if isinstance(mu, bool) or not isinstance(mu, int | float) or not (math.isfinite(mu) and 0 <= mu <= 1e6):
            raise ProtocolViolation(f"{server!r} asked for proximal_mu={mu!r}")
        new, loss = trainer.fit(
            weights, seed=round_seed(settings.seed, settings.index, r), epochs=epochs, proximal_mu=float(mu)
        )
        if dp_client is not None:
            new = dp_client(weights, new)
        if dp_client is not None or trainer.dpsgd is not None:
            loss = math.nan  # the training loss is not privatised: under DP it stays with the client
        trained += 1
        if secure is not None:
            if sharing is not None:
                sharing.wait()
            delta = [
                np.asarray(n, dtype=np.float64) - np.asarray(w, dtype=np.float64)
                for n, w in zip(new, weights, strict=True)
            ]
            if premasking is not None:  # it writes only secure.premask; open_shares wrote other fields meanwhile
                premasking.wait()
                premasking = None
            masked = mask(sa, secure, delta, num_examples=trainer.data.num_train)
            next_shares = sealing_next.wait() if sealing_next is not None else None
            reply = Reply(
                round=r,
                num_examples=0,
                weights=None,
                train_loss=loss,
                eval=stats,
                masked=masked,
                next_keys=ahead.fresh(r),
                next_shares=next_shares if isinstance(next_shares, SealedShares) else None,
            )
            ch.send(server, "reply", reply)
            # the aggregator asks only some clients for unmasking shares: the next message may come first
            upcoming = f"round-{r + 1}/task" if r < start.rounds else "final/model"
            tag, value = channel.recv_first(server, [f"round-{r}/secagg/{UNMASK_REQUEST}", upcoming])
            if tag == upcoming:
                early = value
            else:
                reply_unmask(sa, secure, value)
            nxt = ahead.states.get(r + 1)
            if sealing_next is not None and nxt is not None and nxt.roster is not None:
                premasking = _Background(precompute_mask, nxt)  # the next round's masks while we wait for its task
        else:
            if settings.secagg:
                raise ProtocolViolation(f"{server!r} asked for a plain update in a job with secure aggregation")
            reply = Reply(round=r, num_examples=trainer.data.num_train, weights=new, train_loss=loss, eval=stats)
            ch.send(server, "reply", reply)
        if on_round is not None:
            on_round(r)
    final = expect(channel.sub("final").recv(server, "model") if early is None else early, Final, server)
    weights = check_weights(final.weights, shapes, server)
    channel.sub("final").send(server, "eval", trainer.evaluate(weights).to_wire())
    progress.update("federated training", start.rounds, start.rounds)
    return ClientResult(
        weights=weights,
        rounds_trained=trained,
        rounds_run=max(last, final.rounds_run),
        stop_reason=stop or final.stop_reason,
        moments=moments,
    )
