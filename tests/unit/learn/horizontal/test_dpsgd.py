"""Example-level DP-SGD inside a client (Opacus), on the breast-cancer table with a small MLP."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn

from jointly.dp.accountant import RdpAccountant
from jointly.errors import BudgetExhausted, ConfigError
from jointly.learn.horizontal.dpsgd import DpSgdConfig, DpSgdSession, check_model
from jointly.learn.horizontal.models import ModelSpec, build_model

LOSS = nn.BCEWithLogitsLoss()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: intra-op threads only contend with each other (and with other work on the machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def _data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelSpec(family="mlp", num_classes=1, in_features=30, hidden=(16,)))


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) > 0).float() == y).float().mean())


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_training_learns_with_moderate_noise_and_keeps_the_model_plain() -> None:
    x, y = _data()
    model = _mlp()
    keys = list(model.state_dict())
    with torch.no_grad():
        loss_before = float(LOSS(model(x), y))
    session = DpSgdSession(DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0), num_examples=len(x), batch_size=64)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks from Opacus or torch's hooks
        mean_loss = session.train(model, x, y, loss_fn=LOSS, epochs=3, lr=0.5, generator=_gen(1))
    with torch.no_grad():
        loss_after = float(LOSS(model(x), y))
    assert type(model).__name__ == "MLP"
    assert list(model.state_dict()) == keys
    assert not model.training  # mode restored
    assert all(p.grad is None and not hasattr(p, "grad_sample") for p in model.parameters())
    assert model.net[1].inplace is True  # in-place ReLU switched off only during training
    assert not hasattr(model, "autograd_grad_sample_hooks")
    assert loss_after < 0.5 * loss_before
    assert _accuracy(model, x, y) > 0.9
    assert math.isfinite(mean_loss) and 0.0 < mean_loss < loss_before
    assert session.steps == 3 * round(len(x) / 64)
    assert 0.0 < session.epsilon < math.inf


def test_epsilon_is_the_package_accountants_and_close_to_opacus() -> None:
    x, y = _data()
    cfg = DpSgdConfig(noise_multiplier=1.1, max_grad_norm=1.0, delta=1e-5)
    session = DpSgdSession(cfg, num_examples=len(x), batch_size=32)
    session.train(_mlp(), x, y, loss_fn=LOSS, epochs=1, lr=0.1, generator=_gen(2))
    session.train(_mlp(), x, y, loss_fn=LOSS, epochs=2, lr=0.1, generator=_gen(3))
    q = 32 / len(x)
    assert session.steps == 3 * round(1 / q) == 3 * 18
    ours = RdpAccountant(1.1, q, 1e-5)
    ours.step(session.steps)
    assert session.epsilon == ours.epsilon()

    rdp_mod = pytest.importorskip("opacus.accountants")
    theirs = rdp_mod.RDPAccountant()
    theirs.history.append((1.1, q, session.steps))
    assert session.epsilon == pytest.approx(theirs.get_epsilon(delta=1e-5), rel=1e-3)


def test_one_record_moves_one_step_by_at_most_two_lr_c_over_n() -> None:
    """q = 1 and almost no noise: replacing one record changes the update by <= 2 * lr * C / N."""
    x, y = _data()
    n = len(x)
    x_other, y_other = x.clone(), y.clone()
    x_other[0] = 50.0  # an extreme record with the wrong label
    y_other[0] = 1.0 - y_other[0]
    lr = 1.0

    def moved(c: float) -> tuple[float, float]:
        cfg = DpSgdConfig(noise_multiplier=1e-3, max_grad_norm=c)
        a, b = _mlp(), _mlp()
        start = _flat(a)
        DpSgdSession(cfg, num_examples=n, batch_size=n).train(a, x, y, loss_fn=LOSS, epochs=1, lr=lr, generator=_gen(4))
        DpSgdSession(cfg, num_examples=n, batch_size=n).train(
            b, x_other, y_other, loss_fn=LOSS, epochs=1, lr=lr, generator=_gen(4)
        )
        return float((_flat(a) - _flat(b)).norm()), float((_flat(a) - start).norm())

    c = 1e-2
    influence, step = moved(c)
    bound = 2 * lr * c / n
    assert influence <= bound * (1 + 1e-4)
    assert influence > 0.2 * bound  # the extreme record does push as far as it is allowed
    assert step <= lr * c * (1 + 1e-3) + 1e-6  # whole step: mean of clipped gradients (+ tiny noise)
    unclipped_influence, _ = moved(1e3)  # the same bound fails without effective clipping
    assert unclipped_influence > 20 * bound


def test_budget_refusal_changes_nothing() -> None:
    x, y = _data()
    q = 64 / len(x)
    one_epoch = RdpAccountant(1.0, q, 1e-5)
    one_epoch.step(round(1 / q))
    limit = one_epoch.epsilon_after(round(1 / q) // 2)  # 1 epoch fits, 2 do not
    session = DpSgdSession(
        DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0, epsilon=limit), num_examples=len(x), batch_size=64
    )
    model = _mlp()
    assert not session.would_exceed(1)
    assert session.would_exceed(2)
    session.train(model, x, y, loss_fn=LOSS, epochs=1, lr=0.5, generator=_gen(5))
    assert session.epsilon == pytest.approx(one_epoch.epsilon(), rel=1e-12)
    assert session.would_exceed(1)
    weights, state = _flat(model).clone(), session.state_dict()
    with pytest.raises(BudgetExhausted, match="exhausted"):
        session.train(model, x, y, loss_fn=LOSS, epochs=1, lr=0.5, generator=_gen(6))
    assert torch.equal(_flat(model), weights)
    assert session.state_dict() == state
    assert session.steps == round(1 / q)


def test_state_dict_round_trip_through_json() -> None:
    x, y = _data()
    cfg = DpSgdConfig(noise_multiplier=1.2, max_grad_norm=0.5, epsilon=8.0)
    session = DpSgdSession(cfg, num_examples=len(x), batch_size=100)
    session.train(_mlp(), x, y, loss_fn=LOSS, epochs=2, lr=0.2, generator=_gen(7))
    state = json.loads(json.dumps(session.state_dict()))
    restored = DpSgdSession(cfg, num_examples=len(x), batch_size=100)
    assert restored.steps == 0
    restored.load_state_dict(state)
    assert (restored.steps, restored.epsilon) == (session.steps, session.epsilon)
    assert [restored.would_exceed(e) for e in (1, 5, 20)] == [session.would_exceed(e) for e in (1, 5, 20)]
    restored.train(_mlp(), x, y, loss_fn=LOSS, epochs=1, lr=0.2, generator=_gen(8))  # budget still consistent
    assert restored.steps == session.steps + session.steps_per_epoch

    other = DpSgdSession(
        DpSgdConfig(noise_multiplier=1.0, max_grad_norm=0.5, epsilon=8.0), num_examples=len(x), batch_size=100
    )
    with pytest.raises(ConfigError, match="session state is for"):
        other.load_state_dict(state)
    tampered = json.loads(json.dumps(state))
    tampered["budget"]["spent"] = 0.0
    fresh = DpSgdSession(cfg, num_examples=len(x), batch_size=100)
    with pytest.raises(ConfigError, match="inconsistent"):
        fresh.load_state_dict(tampered)
    assert fresh.steps == 0


def test_proximal_term_pulls_towards_the_global_model_and_costs_no_privacy() -> None:
    x, y = _data()
    cfg = DpSgdConfig(noise_multiplier=0.5, max_grad_norm=1.0)
    global_model = _mlp()
    global_params = [p.detach().clone() for p in global_model.parameters()]
    start = _flat(global_model)
    plain, prox = _mlp(), _mlp()
    s_plain = DpSgdSession(cfg, num_examples=len(x), batch_size=64)
    s_prox = DpSgdSession(cfg, num_examples=len(x), batch_size=64)
    s_plain.train(plain, x, y, loss_fn=LOSS, epochs=2, lr=0.5, generator=_gen(9))
    s_prox.train(prox, x, y, loss_fn=LOSS, epochs=2, lr=0.5, proximal=(1.0, global_params), generator=_gen(9))
    assert float((_flat(prox) - start).norm()) < 0.8 * float((_flat(plain) - start).norm())
    assert s_prox.epsilon == s_plain.epsilon
    with pytest.raises(ConfigError, match="one global tensor per model parameter"):
        s_prox.train(prox, x, y, loss_fn=LOSS, epochs=1, lr=0.5, proximal=(1.0, global_params[:-1]))


def test_tiny_sampling_rate_takes_noise_only_steps_on_empty_samples() -> None:
    x, y = _data()
    x, y = x[:20], y[:20]
    session = DpSgdSession(DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0), num_examples=20, batch_size=1)
    model = _mlp()
    start = _flat(model)
    loss = session.train(model, x, y, loss_fn=LOSS, epochs=2, lr=0.1, generator=_gen(10))
    assert session.steps == 40
    assert not torch.equal(_flat(model), start)
    assert math.isfinite(loss)


def test_check_model_refuses_batchnorm_and_accepts_groupnorm() -> None:
    batch = build_model(ModelSpec(family="cnn", num_classes=3, in_channels=1, image_size=8, options={"norm": "batch"}))
    with pytest.raises(ConfigError, match=r"features\.1 \(BatchNorm2d\).*'norm': 'group'"):
        check_model(batch)
    group = build_model(ModelSpec(family="cnn", num_classes=3, in_channels=1, image_size=8, options={"norm": "group"}))
    check_model(group)
    keys = list(group.state_dict())
    torch.manual_seed(11)
    images, labels = torch.randn(40, 1, 8, 8), torch.randint(0, 3, (40,))
    session = DpSgdSession(DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0), num_examples=40, batch_size=10)
    start = _flat(group)
    loss = session.train(group, images, labels, loss_fn=nn.CrossEntropyLoss(), epochs=1, lr=0.1, generator=_gen(12))
    assert math.isfinite(loss)
    assert list(group.state_dict()) == keys
    assert not torch.equal(_flat(group), start)
    with pytest.raises(ConfigError, match="BatchNorm"):
        session.train(batch, images, labels, loss_fn=nn.CrossEntropyLoss(), epochs=1, lr=0.1)
    assert session.steps == 4  # the refused call ran nothing


def test_refuses_bad_inputs_before_spending() -> None:
    x, y = _data()
    session = DpSgdSession(DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0), num_examples=len(x), batch_size=64)
    model = _mlp()
    with pytest.raises(ConfigError, match="num_examples"):
        session.train(model, x[:-1], y[:-1], loss_fn=LOSS, epochs=1, lr=0.1)
    with pytest.raises(ConfigError, match="reduction"):
        session.train(model, x, y, loss_fn=nn.BCEWithLogitsLoss(reduction="sum"), epochs=1, lr=0.1)
    with pytest.raises(ConfigError, match="epochs"):
        session.train(model, x, y, loss_fn=LOSS, epochs=0, lr=0.1)
    assert session.steps == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"noise_multiplier": 0.0, "max_grad_norm": 1.0},
        {"noise_multiplier": math.inf, "max_grad_norm": 1.0},
        {"noise_multiplier": 1.0, "max_grad_norm": -1.0},
        {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1.0},
        {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "epsilon": 0.0},
        {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "epsilon": math.nan},
    ],
)
def test_config_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DpSgdConfig(**kwargs)


def test_session_validation() -> None:
    cfg = DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0)
    with pytest.raises(ConfigError, match="batch_size"):
        DpSgdSession(cfg, num_examples=10, batch_size=11)
    with pytest.raises(ConfigError, match="num_examples"):
        DpSgdSession(cfg, num_examples=0, batch_size=1)
    assert DpSgdSession(cfg, num_examples=569, batch_size=64).steps_per_epoch == round(569 / 64)
    assert not DpSgdSession(cfg, num_examples=10, batch_size=5).would_exceed(10**6)  # no budget: never refuses


@pytest.mark.skipif(importlib.util.find_spec("torchcsprng") is not None, reason="torchcsprng is installed")
def test_secure_mode_without_torchcsprng_is_refused() -> None:
    with pytest.raises(ConfigError, match="torchcsprng"):
        DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0, secure_mode=True)


def test_arrays_stay_numpy_free() -> None:
    """The session state has only JSON types (no numpy scalars sneak in)."""
    session = DpSgdSession(
        DpSgdConfig(noise_multiplier=1.0, max_grad_norm=1.0, epsilon=3.0), num_examples=10, batch_size=2
    )
    state = session.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert not any(isinstance(v, np.generic) for v in state.values())
