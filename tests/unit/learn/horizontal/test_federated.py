"""Federated training over the in-memory channel: the aggregator and client protocol end to end.

Equivalence with centralised training, secure aggregation equal to plain aggregation and hiding the
updates, drop-outs, the privacy budget stopping training, Byzantine robustness, checkpoint/resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

from jointly.channel import Channel
from jointly.channel.codec import decode
from jointly.channel.memory import MemoryEndpoint, MemoryHub
from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget
from jointly.learn.horizontal.client import ClientSettings, run_client
from jointly.learn.horizontal.dp import DpServerFixedClipping
from jointly.learn.horizontal.messages import Reply, Task
from jointly.learn.horizontal.models import ModelSpec, build_model, get_weights, set_weights
from jointly.learn.horizontal.server import Checkpoint, FitResult, ServerConfig, run_server
from jointly.learn.horizontal.strategies import FedAvg, Krum, Median, Sampling, Strategy
from jointly.learn.horizontal.trainer import HIST_BINS, LocalData, TrainConfig, Trainer, auc_from_histograms

SPEC = ModelSpec(family="mlp", num_classes=1, in_features=30, hidden=(8,))


def breast(clients: int, sizes: Sequence[float] | None = None) -> list[LocalData]:
    data = load_breast_cancer()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:114], order[114:]
    weights = np.asarray(sizes if sizes is not None else [1.0] * clients)
    cuts = (np.cumsum(weights) / weights.sum() * len(train)).astype(int)[:-1]
    tcuts = (np.cumsum(weights) / weights.sum() * len(test)).astype(int)[:-1]
    return [
        LocalData(x[tr], y[tr], x[te], y[te])
        for tr, te in zip(np.split(train, cuts), np.split(test, tcuts), strict=True)
    ]


def initial() -> list[np.ndarray]:
    torch.manual_seed(0)
    return get_weights(build_model(SPEC))


def train_federated(
    parts: list[LocalData],
    strategy: Strategy | Any,
    config: ServerConfig,
    *,
    train: TrainConfig | None = None,
    trainers: dict[int, type[Trainer]] | None = None,
    checkpoint: Checkpoint | None = None,
    hub: MemoryHub | None = None,
) -> tuple[FitResult, MemoryHub, dict[str, Trainer]]:
    names = [f"c{i}" for i in range(len(parts))]
    hub = hub or MemoryHub(["hub", *names])
    made: dict[str, Trainer] = {}
    train = train or TrainConfig(batch_size=1000, lr=0.5)
    start = initial()  # before the threads start: they share torch's global generator

    def client(i: int) -> Any:
        def fn(ch: Any) -> Any:
            cls = (trainers or {}).get(i, Trainer)
            made[names[i]] = trainer = cls(build_model(SPEC), parts[i], train, num_classes=1)
            settings = ClientSettings(index=i, secagg=config.secagg, round_timeout=config.round_timeout)
            return run_client(ch, "hub", trainer, settings)

        return fn

    def server(ch: Any) -> FitResult:
        return run_server(ch, names, strategy, start, config, num_classes=1, checkpoint=checkpoint)

    results = hub.run({"hub": server, **{n: client(i) for i, n in enumerate(names)}}, timeout=120)
    return results["hub"], hub, made


def test_fedavg_of_full_batch_steps_equals_centralised_gradient_descent_on_the_union() -> None:
    parts = breast(3, sizes=[1, 2, 3])  # unequal clients: FedAvg must weight by example counts
    result, _, _ = train_federated(parts, FedAvg(sampling=Sampling(min_clients=3)), ServerConfig(rounds=3))
    model = build_model(SPEC)
    set_weights(model, initial())
    x = torch.from_numpy(np.concatenate([p.x_train for p in parts]))
    y = torch.from_numpy(np.concatenate([p.y_train for p in parts])).float()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(x).reshape(-1), y).backward()  # type: ignore[no-untyped-call]
        opt.step()
    for fed, central in zip(result.weights, get_weights(model), strict=True):
        np.testing.assert_allclose(fed, central, atol=2e-5)
    assert result.rounds_run == 3 and [r.round for r in result.history] == [0, 1, 2, 3]
    assert all(r.contributed == ["c0", "c1", "c2"] for r in result.history[1:])


def test_federated_evaluation_equals_evaluation_on_the_union_of_test_rows() -> None:
    parts = breast(3)
    result, _, _ = train_federated(parts, FedAvg(), ServerConfig(rounds=2))
    model = build_model(SPEC)
    set_weights(model, result.weights)
    x = torch.from_numpy(np.concatenate([p.x_test for p in parts]))
    y = np.concatenate([p.y_test for p in parts])
    with torch.no_grad():
        prob = torch.sigmoid(model(x).reshape(-1)).numpy()
    final = result.history[-1].metrics
    assert final["test_rows"] == len(y)
    assert final["accuracy"] == pytest.approx(float(((prob >= 0.5) == y).mean()))
    assert abs(final["auc"] - roc_auc_score(y, prob)) < 0.01  # histogram AUC: ties only within 1/100 bins


def test_auc_from_histograms_matches_the_exact_auc_when_scores_fall_in_distinct_bins() -> None:
    rng = np.random.default_rng(1)
    bins = rng.permutation(HIST_BINS)[:60]
    labels = rng.integers(0, 2, 60)
    pos = np.bincount(bins[labels == 1], minlength=HIST_BINS)
    neg = np.bincount(bins[labels == 0], minlength=HIST_BINS)
    assert auc_from_histograms(pos, neg) == pytest.approx(roc_auc_score(labels, bins))


class Recording(Trainer):
    """Keeps every local model it produced, to look for it on the wire."""

    produced: list[list[np.ndarray]]

    def fit(self, weights: Sequence[np.ndarray], **kw: Any) -> tuple[list[np.ndarray], float]:
        new, loss = super().fit(weights, **kw)
        self.produced = [*getattr(self, "produced", []), new]
        return new, loss


def test_secure_aggregation_gives_the_plain_model_and_hides_every_update() -> None:
    parts = breast(4)
    plain, _, _ = train_federated(parts, FedAvg(), ServerConfig(rounds=4))
    rec = dict.fromkeys(range(4), Recording)
    secure, hub, trainers = train_federated(parts, FedAvg(), ServerConfig(rounds=4, secagg=2), trainers=rec)
    for a, b in zip(plain.weights, secure.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)  # fixed-point rounding of the masked sum only
    to_hub = [data for _src, dst, _tag, data in hub.log if dst == "hub"]
    for data in to_hub:
        msg = decode(data)
        assert not (isinstance(msg, Reply) and msg.weights is not None)
    for trainer in trainers.values():
        for model in getattr(trainer, "produced", []):
            big = max(model, key=lambda w: w.size)
            assert all(big.tobytes()[:64] not in data for data in to_hub)
    assert [r.contributed for r in secure.history[1:]] == [["c0", "c1", "c2", "c3"]] * 4


def _round_log(hub: MemoryHub, r: int) -> tuple[set[str], dict[str, Task], dict[str, Reply]]:
    """Round ``r``'s tags, tasks (by client) and replies (by client) as the hub carried them."""
    tags = {tag for _s, _d, tag, _data in hub.log if tag.startswith(f"round-{r}/")}
    tasks = {dst: decode(d) for _s, dst, tag, d in hub.log if tag == f"round-{r}/task"}
    replies = {src: decode(d) for src, _d, tag, d in hub.log if tag == f"round-{r}/reply"}
    return tags, tasks, replies


def test_secure_aggregation_sends_keys_rosters_and_shares_ahead_so_later_rounds_need_four_messages() -> None:
    secure, hub, _ = train_federated(breast(4), FedAvg(), ServerConfig(rounds=4, secagg=2))
    names = ["c0", "c1", "c2", "c3"]
    # round 1: keys and shares in the round's own secagg stages; every reply sends keys for rounds 2 and 3
    tags, tasks, replies = _round_log(hub, 1)
    assert {"round-1/secagg/advertise/keys", "round-1/secagg/share/out", "round-1/secagg/share/in"} <= tags
    assert all(set(rep.next_keys or {}) == {2, 3} for rep in replies.values())
    ahead = {r: {c: replies[c].next_keys[r] for c in names} for r in (2, 3)}  # type: ignore[index]
    # round 2: its roster comes with the task (shares still relayed while training), and so does round 3's
    tags, tasks, replies = _round_log(hub, 2)
    assert not any(t.startswith("round-2/secagg/advertise/") for t in tags)
    assert "round-2/secagg/share/out" in tags
    for r, roster in ((2, tasks["c0"].secagg_roster), (3, tasks["c0"].next_roster)):
        assert roster is not None and roster.clients == names
        assert [[c, s] for c, s in zip(roster.c_pks, roster.s_pks, strict=True)] == [ahead[r][c] for c in names]
    assert all(set(rep.next_keys or {}) == {4} for rep in replies.values())
    sealed = {c: rep.next_shares for c, rep in replies.items()}
    assert all(s is not None and set(s.ciphertexts) == set(names) - {c} for c, s in sealed.items())
    # round 3: the task relays the shares of round 2's replies, unaltered; four messages per client
    tags, tasks, _ = _round_log(hub, 3)
    for v in names:
        relayed = tasks[v].secagg_shares
        assert relayed is not None
        assert relayed.ciphertexts == {u: sealed[u].ciphertexts[v] for u in names if u != v}  # type: ignore[union-attr]
    assert tags == {"round-3/task", "round-3/reply", "round-3/secagg/unmask/request", "round-3/secagg/unmask/shares"}
    assert tasks["c0"].next_roster is not None  # for round 4, the last: its tasks announce no next round
    _, tasks, replies = _round_log(hub, 4)
    assert all(t.next_roster is None and t.secagg_shares is not None for t in tasks.values())
    assert all(rep.next_keys is None and rep.next_shares is None for rep in replies.values())
    assert [r.contributed for r in secure.history[1:]] == [names] * 4
    # only `threshold` (3) clients are asked for unmasking shares, taking turns; the others wait for the next task
    asked = {
        r: sorted(d for _s, d, tag, _m in hub.log if tag == f"round-{r}/secagg/unmask/request") for r in range(1, 5)
    }
    assert asked == {1: ["c0", "c1", "c2"], 2: ["c1", "c2", "c3"], 3: ["c0", "c2", "c3"], 4: ["c0", "c1", "c3"]}


def test_clients_make_the_next_rounds_masks_while_they_wait_and_use_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from jointly.protocols.secagg import client as secagg_client

    made, used = [], []
    real_make, real_masked = secagg_client.precompute_mask, secagg_client.masked_message

    def make(state: Any) -> None:
        made.append(state.name)
        real_make(state)

    def masked(state: Any, vector: np.ndarray) -> Any:
        used.append(state.premask is not None)
        return real_masked(state, vector)

    monkeypatch.setattr("jointly.learn.horizontal.client.precompute_mask", make)
    monkeypatch.setattr(secagg_client, "masked_message", masked)
    plain, _, _ = train_federated(breast(4), FedAvg(), ServerConfig(rounds=4))
    secure, _, _ = train_federated(breast(4), FedAvg(), ServerConfig(rounds=4, secagg=2))
    # rounds 3 and 4 had their rosters one task ahead: their masks were made while the clients waited
    assert sorted(made) == sorted(["c0", "c1", "c2", "c3"] * 2)
    assert used.count(True) == 8 and used.count(False) == 8
    for a, b in zip(plain.weights, secure.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


class _Quitting(MemoryEndpoint):
    """A client's endpoint that is gone (its next receive raises) once it sent a message under ``after``."""

    class Gone(Exception):
        pass

    def __init__(self, hub: MemoryHub, party: str, after: str) -> None:
        super().__init__(hub, party)
        self.after, self.gone = after, False

    def send_bytes(self, to: str, tag: str, data: bytes) -> None:
        super().send_bytes(to, tag, data)
        self.gone = self.gone or tag == self.after

    def recv_bytes(self, frm: str, tag: str, timeout: float) -> bytes:
        if self.gone:
            raise self.Gone
        return super().recv_bytes(frm, tag, timeout)

    def recv_first_bytes(self, frm: str, tags: Sequence[str], timeout: float) -> tuple[str, bytes]:
        if self.gone:
            raise self.Gone
        return super().recv_first_bytes(frm, tags, timeout)


def _with_a_quitter(secagg: int, after: str) -> FitResult:
    """Four clients, FedAvg, four rounds; c3 is gone after sending ``after``."""
    parts = breast(4)
    names = ["c0", "c1", "c2", "c3"]
    hub = MemoryHub(["hub", *names])
    config = ServerConfig(rounds=4, secagg=secagg, round_timeout=1.0)
    start = initial()

    def client(i: int) -> Any:
        def fn(ch: Any) -> Any:
            if names[i] == "c3":
                ch = Channel(_Quitting(hub, "c3", after))
            trainer = Trainer(build_model(SPEC), parts[i], TrainConfig(batch_size=1000, lr=0.5), num_classes=1)
            settings = ClientSettings(index=i, secagg=secagg, round_timeout=config.round_timeout)
            try:
                return run_client(ch, "hub", trainer, settings)
            except _Quitting.Gone:
                return None

        return fn

    def server(ch: Any) -> FitResult:
        return run_server(ch, names, FedAvg(sampling=Sampling(min_clients=2)), start, config, num_classes=1)

    result: FitResult = hub.run({"hub": server, **{n: client(i) for i, n in enumerate(names)}})["hub"]
    if secagg:  # c3's shares for round 3 went ahead: its masks are removed; round 4 exchanges fresh keys
        tags, tasks, _ = _round_log(hub, 3)
        assert tasks["c0"].secagg_shares is not None and not any("/advertise/" in t for t in tags)
        tags, tasks, _ = _round_log(hub, 4)
        assert tasks["c0"].secagg_shares is None and "round-4/secagg/advertise/keys" in tags
    return result


def test_secure_aggregation_survives_a_client_gone_after_its_shares_went_ahead() -> None:
    plain = _with_a_quitter(0, "round-2/reply")
    secure = _with_a_quitter(2, "round-2/secagg/unmask/shares")
    for a, b in zip(plain.weights, secure.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    four, three = ["c0", "c1", "c2", "c3"], ["c0", "c1", "c2"]
    assert [r.contributed for r in secure.history[1:]] == [four, four, three, three]
    assert [r.dropped for r in secure.history[3:]] == [["c3"], ["c3"]]


def test_secure_aggregation_with_sampled_clients_sends_keys_ahead_for_every_client() -> None:
    parts = breast(5)
    strategy = FedAvg(sampling=Sampling(fraction=0.6, min_clients=3))
    plain, _, _ = train_federated(parts, FedAvg(sampling=Sampling(fraction=0.6, min_clients=3)), ServerConfig(rounds=4))
    secure, hub, _ = train_federated(parts, strategy, ServerConfig(rounds=4, secagg=2))
    for a, b in zip(plain.weights, secure.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert [r.sampled for r in secure.history[1:]] == [r.sampled for r in plain.history[1:]]
    for r in range(2, 5):  # clients left out of a round still send keys (with their evaluation) for the next
        tasks = {dst: decode(d) for _s, dst, tag, d in hub.log if tag == f"round-{r}/task"}
        sampled = secure.history[r].sampled
        assert {c for c, t in tasks.items() if t.secagg_roster is not None} == set(sampled)
        assert tasks[sampled[0]].secagg_roster.clients == sampled


@pytest.mark.parametrize(
    ("field", "refusal"),
    [
        ("secagg_roster", "roster for keys this client did not send ahead"),
        ("next_roster", "next-round roster for keys this client did not send ahead"),
        ("secagg_shares", "relayed shares for a roster this client did not accept ahead"),
    ],
)
def test_a_client_refuses_secagg_material_made_of_keys_it_did_not_send_ahead(field: str, refusal: str) -> None:
    from jointly.errors import ProtocolViolation
    from jointly.learn.horizontal.messages import Start
    from jointly.protocols.secagg import Roster, SealedShares

    parts = breast(1)
    hub = MemoryHub(["hub", "c0"])
    roster = Roster(
        clients=["c0", "c1"], c_pks=[bytes(32), bytes([1]) * 32], s_pks=[bytes([2]) * 32, bytes([3]) * 32], length=2
    )
    material = {
        "secagg_roster": {"secagg_roster": roster},
        "next_roster": {"next_roster": roster, "next_threshold": 2},
        "secagg_shares": {"secagg_shares": SealedShares(ciphertexts={"c1": bytes(64)})},
    }[field]

    def server(ch: Any) -> None:
        ch.sub("start").send("c0", "plan", Start(first_round=1, rounds=2))
        task = Task(
            round=1,
            train=True,
            evaluate=False,
            weights=initial(),
            config={"local_epochs": 1},
            secagg_threshold=2,
            **material,  # type: ignore[arg-type]
        )
        ch.sub("round-1").send("c0", "task", task)

    def client(ch: Any) -> Any:
        trainer = Trainer(build_model(SPEC), parts[0], TrainConfig(batch_size=1000, lr=0.5), num_classes=1)
        return run_client(ch, "hub", trainer, ClientSettings(secagg=2, round_timeout=2.0))

    with pytest.raises(ProtocolViolation, match=refusal):
        hub.run({"hub": server, "c0": client}, timeout=60)


def test_a_client_that_stops_answering_is_dropped_and_training_goes_on() -> None:
    parts = breast(3)
    names = ["c0", "c1", "c2"]
    hub = MemoryHub(["hub", *names])

    def quitter(ch: Any) -> None:  # answers round 1, then is gone (no failure signal in memory)
        from jointly.learn.horizontal.messages import Task

        ch.sub("start").recv("hub", "plan")
        r1 = ch.sub("round-1")
        task = r1.recv("hub", "task")
        assert isinstance(task, Task)
        trainer = Trainer(build_model(SPEC), parts[2], TrainConfig(batch_size=1000, lr=0.5), num_classes=1)
        assert task.weights is not None
        new, loss = trainer.fit(task.weights, seed=0)
        r1.send(
            "hub", "reply", Reply(round=1, num_examples=parts[2].num_train, weights=new, train_loss=loss, eval=None)
        )

    def client(i: int) -> Any:
        def fn(ch: Any) -> Any:
            trainer = Trainer(build_model(SPEC), parts[i], TrainConfig(batch_size=1000, lr=0.5), num_classes=1)
            return run_client(ch, "hub", trainer, ClientSettings(index=i))

        return fn

    config = ServerConfig(rounds=3, round_timeout=1.0)
    start = initial()

    def server(ch: Any) -> FitResult:
        return run_server(ch, names, FedAvg(sampling=Sampling(min_clients=2)), start, config, num_classes=1)

    result = hub.run({"hub": server, "c0": client(0), "c1": client(1), "c2": quitter})["hub"]
    assert result.history[1].contributed == names
    assert [r.contributed for r in result.history[2:]] == [["c0", "c1"], ["c0", "c1"]]
    assert [r.dropped for r in result.history[2:]] == [["c2"], ["c2"]]


def test_the_privacy_budget_stops_training_before_the_round_that_would_overspend() -> None:
    parts = breast(3)
    accountant = RdpAccountant(3.0, 1.0, 1e-5)
    budget = PrivacyBudget(epsilon=3.0, delta=1e-5)
    affordable = max(k for k in range(1, 50) if accountant.epsilon_after(k) <= 3.0)
    assert affordable == 4
    dp = DpServerFixedClipping(FedAvg(), noise_multiplier=3.0, clip_norm=1.0, budget=budget, accountant=accountant)
    result, _, _ = train_federated(parts, dp, ServerConfig(rounds=affordable + 3))
    assert result.rounds_run == affordable and "budget" in result.stop_reason
    assert budget.spent <= 3.0 and accountant.steps == affordable
    assert [r.epsilon for r in result.history[1:]] == pytest.approx(
        [RdpAccountant(3.0, 1.0, 1e-5).epsilon_after(k) for k in range(1, affordable + 1)]
    )


class Byzantine(Trainer):
    """Sends its honest update reversed and scaled by 20."""

    def fit(self, weights: Sequence[np.ndarray], **kw: Any) -> tuple[list[np.ndarray], float]:
        new, loss = super().fit(weights, **kw)
        return [(w - 20 * (n - w)).astype(np.float32) for n, w in zip(new, weights, strict=True)], loss


@pytest.mark.parametrize("robust", [Median, Krum])
def test_robust_aggregation_keeps_accuracy_against_a_byzantine_client_while_fedavg_degrades(robust: type) -> None:
    parts = breast(5)
    bad = {4: Byzantine}
    train = TrainConfig(batch_size=32, lr=0.1, momentum=0.9)
    config = ServerConfig(rounds=5)
    avg, _, _ = train_federated(parts, FedAvg(local_epochs=5), config, train=train, trainers=bad)
    strategy = robust(f=1, local_epochs=5) if robust is Krum else robust(local_epochs=5)
    kept, _, _ = train_federated(parts, strategy, config, train=train, trainers=bad)
    assert kept.history[-1].metrics["accuracy"] >= 0.9
    assert avg.history[-1].metrics["accuracy"] < kept.history[-1].metrics["accuracy"] - 0.2


def test_a_crashed_aggregator_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    parts = breast(3)
    uninterrupted, _, _ = train_federated(parts, FedAvg(), ServerConfig(rounds=5))

    class Crashing(FedAvg):
        def aggregate(self, round: int, global_weights: list[np.ndarray], updates: Any) -> list[np.ndarray]:
            if round == 4:
                raise RuntimeError("aggregator crashed")
            return super().aggregate(round, global_weights, updates)

    checkpoint = Checkpoint(tmp_path / "checkpoint", fingerprint="breast-mlp")
    with pytest.raises(RuntimeError, match="crashed"):
        train_federated(parts, Crashing(), ServerConfig(rounds=5), checkpoint=checkpoint)
    saved = checkpoint.load()
    assert saved is not None and saved[0] == 3
    resumed, hub, _ = train_federated(parts, FedAvg(), ServerConfig(rounds=5), checkpoint=checkpoint)
    assert [r.round for r in resumed.history] == [0, 1, 2, 3, 4, 5]
    assert not any(tag.startswith(("round-1/", "round-3/")) for _s, _d, tag, _b in hub.log)  # nothing redone
    for a, b in zip(uninterrupted.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(Exception, match="different model"):
        Checkpoint(tmp_path / "checkpoint", fingerprint="another-model").load()


def test_the_trainers_sgd_step_equals_torch_optim_sgd() -> None:
    from jointly.learn.horizontal.trainer import _sgd

    torch.manual_seed(0)
    ours, ref = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    ours.load_state_dict(ref.state_dict())
    step = _sgd(list(ours.parameters()), TrainConfig(lr=0.1, momentum=0.9, weight_decay=0.01))
    opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(5):
        x = torch.randn(8, 5)
        for m in (ours, ref):
            for p in m.parameters():
                p.grad = None
            (m(x) ** 2).sum().backward()  # type: ignore[no-untyped-call]
        opt.step()
        step()
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_client_side_dp_noise_under_secure_aggregation_pays_the_budget_per_round() -> None:
    from jointly.learn.horizontal.dp import DpClientFixedClipping, DpServerClientSideNoise

    parts = breast(3)
    names = ["c0", "c1", "c2"]
    hub = MemoryHub(["hub", *names])
    accountant = RdpAccountant(2.0, 1.0, 1e-5)
    budget = PrivacyBudget(epsilon=50.0, delta=1e-5)
    dp = DpServerClientSideNoise(FedAvg(), budget=budget, accountant=accountant, expected_clients=3)
    config = ServerConfig(rounds=3, secagg=2, weighted=False)
    start = initial()

    def client(i: int) -> Any:
        def fn(ch: Any) -> Any:
            trainer = Trainer(build_model(SPEC), parts[i], TrainConfig(batch_size=1000, lr=0.5), num_classes=1)
            noise = DpClientFixedClipping(noise_multiplier=2.0, clip_norm=0.5, expected_clients=3)
            settings = ClientSettings(index=i, secagg=2, weighted=False)
            return run_client(ch, "hub", trainer, settings, dp_client=noise)

        return fn

    def server(ch: Any) -> FitResult:
        return run_server(ch, names, dp, start, config, num_classes=1)

    result = hub.run({"hub": server, **{n: client(i) for i, n in enumerate(names)}})["hub"]
    assert result.rounds_run == 3 and accountant.steps == 3
    assert budget.spent == pytest.approx(RdpAccountant(2.0, 1.0, 1e-5).epsilon_after(3))
    for _src, dst, _tag, data in hub.log:
        msg = decode(data)
        if dst == "hub" and isinstance(msg, Reply):
            assert msg.weights is None and np.isnan(msg.train_loss)  # no update, no unprivatised loss
    assert all(r.contributed == names for r in result.history[1:])


def test_the_strategy_aggregates_against_the_global_model_the_clients_received() -> None:
    seen: list[list[np.ndarray]] = []

    class Recording(FedAvg):
        def aggregate(self, round: int, global_weights: list[np.ndarray], updates: Any) -> list[np.ndarray]:
            seen.append([w.copy() for w in global_weights])
            return super().aggregate(round, global_weights, updates)

    result, _, _ = train_federated(breast(3), Recording(), ServerConfig(rounds=2))
    for a, b in zip(seen[0], initial(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(seen[1], initial(), strict=True))
    assert len(result.history) == 3
