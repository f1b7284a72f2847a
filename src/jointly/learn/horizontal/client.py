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
    ClientState,
    accept_roster,
    help_unmask,
    mask,
    prepare,
    public_keys,
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
    """Run ``fn(*args)`` on a daemon thread; :meth:`wait` joins it and re-raises what it raised."""

    def __init__(self, fn: Callable[..., None], *args: object) -> None:
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="fl-secagg-share", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., None], args: tuple[object, ...]) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the caller by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _keys_ahead(name: str, server: str, settings: ClientSettings) -> ClientState | None:
    """Fresh secure-aggregation keys for our next round (their public halves travel in this round's reply)."""
    if not settings.secagg:
        return None
    cfg = secagg_config(settings.secagg, clip=settings.secagg_clip, weighted=settings.weighted, timeout=1.0)
    return ClientState(name=name, server=server, config=cfg)  # the next task's config replaces ``cfg``


def _share_for(channel: Channel, state: ClientState, roster: object) -> None:
    accept_roster(state, roster, stage=channel.namespace)
    send_shares(channel, state)


def _with_keys(reply: Reply, ahead: ClientState | None) -> Reply:
    return reply if ahead is None else dataclasses.replace(reply, next_keys=list(public_keys(ahead)))


def local_moments(x: np.ndarray) -> Moments:
    """Count, sum and sum of squares of each column of this client's training rows (for standardisation)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return Moments(count=len(flat), total=flat.sum(axis=0), square=(flat**2).sum(axis=0))


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
    ahead: ClientState | None = None
    for r in range(start.first_round, start.rounds + 1):
        ch = channel.sub(f"round-{r}")
        task = expect(ch.recv(server, "task"), Task, server)
        if task.round != r:
            raise ProtocolViolation(f"{server!r} sent the task of round {task.round} in round {r}")
        if task.stop:
            stop = task.stop
            break
        last = r
        progress.update("federated training", r - 1, start.rounds)
        weights = check_weights(task.weights, shapes, server)
        keys_ahead, ahead = ahead, None  # keys sent ahead in the last reply serve this round or none
        if not task.train:
            stats = trainer.evaluate(weights).to_wire() if task.evaluate else None
            ahead = _keys_ahead(channel.party, server, settings)
            reply = Reply(round=r, num_examples=0, weights=None, train_loss=math.nan, eval=stats)
            ch.send(server, "reply", _with_keys(reply, ahead))
            continue
        secure = sharing = None
        sa = ch.sub("secagg")
        if task.secagg_threshold:  # keys and shares first: the aggregator relays them while we train
            if not settings.secagg or task.secagg_threshold < settings.secagg:
                raise ProtocolViolation(
                    f"{server!r} asked for secure aggregation with threshold {task.secagg_threshold}; "
                    f"this job allows {'none' if not settings.secagg else f'at least {settings.secagg}'}"
                )
            cfg = secagg_config(
                task.secagg_threshold,
                clip=settings.secagg_clip,
                weighted=settings.weighted,
                timeout=settings.round_timeout,
            )
            if task.secagg_roster is not None:  # made of the keys we sent ahead: our shares, on a thread
                if keys_ahead is None:
                    raise ProtocolViolation(f"{server!r} sent a roster for keys this client did not send ahead")
                secure = dataclasses.replace(keys_ahead, config=cfg)
                sharing = _Background(_share_for, sa, secure, task.secagg_roster)
            else:  # keys now; the roster and our shares on a thread
                secure = prepare(sa, server, config=cfg, share=False)
                sharing = _Background(share_when_ready, sa, secure)
        elif task.secagg_roster is not None:
            raise ProtocolViolation(f"{server!r} sent a secure-aggregation roster for a plain round")
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
            masked = mask(sa, secure, delta, num_examples=trainer.data.num_train)
            ahead = _keys_ahead(channel.party, server, settings)
            reply = Reply(round=r, num_examples=0, weights=None, train_loss=loss, eval=stats, masked=masked)
            ch.send(server, "reply", _with_keys(reply, ahead))
            help_unmask(sa, secure)
        else:
            if settings.secagg:
                raise ProtocolViolation(f"{server!r} asked for a plain update in a job with secure aggregation")
            reply = Reply(round=r, num_examples=trainer.data.num_train, weights=new, train_loss=loss, eval=stats)
            ch.send(server, "reply", reply)
        if on_round is not None:
            on_round(r)
    final = expect(channel.sub("final").recv(server, "model"), Final, server)
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
