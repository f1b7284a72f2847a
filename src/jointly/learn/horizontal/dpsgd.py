"""Example-level differential privacy inside one horizontal-FL client: DP-SGD with Opacus.

What is protected, from whom.  The unit is one *record* of this client's training data.
Everything the client releases after training (its model updates, hence every global model
built from them, and anything computed from those) is ``(epsilon, delta)``-DP with respect to
adding or removing one of the client's records.  This holds against the server, the other
clients and anyone who sees the models, whatever the aggregation does.  It protects the
client's records, not the client's participation (that is client-level DP, see
:mod:`jointly.learn.horizontal.dp`).  The mean loss that :meth:`DpSgdSession.train` returns
is computed on the raw data and is *not* private: do not release it.

The mechanism (Abadi et al. 2016, "Deep Learning with Differential Privacy").  Each step draws
a Poisson sample of the records (each included independently with probability
``q = batch_size / num_examples``), computes one gradient per record (Opacus's
``GradSampleModule``), clips each to L2 norm ``max_grad_norm``, sums them, adds Gaussian noise
of std ``noise_multiplier * max_grad_norm`` and divides by the expected batch size (Opacus's
``DPOptimizer``); then plain SGD (momentum, weight decay) applies it.  An epoch is
``round(1 / q)`` steps.  Empty samples still take a (noise-only) step, as the analysis assumes.
The FedProx term ``mu / 2 * ||w - w_global||^2`` contributes ``mu * (w - w_global)`` to the
gradient *after* clipping and noise: it does not depend on the data, so it costs no privacy.

The accounting.  One :class:`~jointly.dp.accountant.RdpAccountant` (noise multiplier, ``q``,
delta) per client and job counts the steps actually run, across all rounds, so epsilon is the
same number the rest of the package reports.  With a budget (``DpSgdConfig.epsilon``) a
:class:`~jointly.dp.budget.PrivacyBudget` refuses, *before* any step, a call whose steps would
overspend (:class:`~jointly.errors.BudgetExhausted`; the model and the accountant stay as they
were).  :meth:`DpSgdSession.state_dict` saves both for the job's checkpoint.

Limitations.  Layers that mix records in a batch cannot give per-record gradients:
BatchNorm is refused (:func:`check_model`; the CNN, ResNet and DenseNet families take
``options={"norm": "group"}``), and so is gradient checkpointing (DenseNet's default
``memory_efficient=True``).  In-place activations (``ReLU(inplace=True)``) are switched off
during training and restored afterwards, because Opacus's backward hooks do not allow them.
``secure_mode`` (Opacus's noise robust to floating-point attacks, cryptographically secure
sampling and noise) needs the ``torchcsprng`` package.  The guarantee assumes every record is
one individual; several records of one person need group privacy (a larger epsilon).
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from jointly.dp.accountant import RdpAccountant
from jointly.dp.budget import PrivacyBudget
from jointly.errors import BudgetExhausted, ConfigError

__all__ = ["DpSgdConfig", "DpSgdSession", "check_model"]

_STATE_VERSION = 1
_MAX_LISTED = 6
_NORM_HINT = (
    "use GroupNorm instead (the cnn, resnet and densenet families take options={'norm': 'group'}; "
    "for your own model, opacus.validators.ModuleValidator.fix replaces BatchNorm with GroupNorm)"
)


@dataclass(frozen=True)
class DpSgdConfig:
    """Parameters of one client's DP-SGD.

    ``noise_multiplier`` is the noise std divided by ``max_grad_norm`` (the per-record clipping
    norm); ``delta`` the target delta; ``epsilon`` this client's budget for the whole job
    (``None``: account only, never refuse); ``secure_mode`` Opacus's secure noise and sampling.
    """

    noise_multiplier: float
    max_grad_norm: float
    delta: float = 1e-5
    epsilon: float | None = None
    secure_mode: bool = False

    def __post_init__(self) -> None:
        if not _is_real(self.noise_multiplier) or not 0.0 < self.noise_multiplier < math.inf:
            raise ConfigError(
                f"DP-SGD noise_multiplier must be a positive finite number, got {self.noise_multiplier!r}"
            )
        if not _is_real(self.max_grad_norm) or not 0.0 < self.max_grad_norm < math.inf:
            raise ConfigError(f"DP-SGD max_grad_norm must be a positive finite number, got {self.max_grad_norm!r}")
        if not _is_real(self.delta) or not 0.0 < self.delta < 1.0:
            raise ConfigError(f"DP-SGD delta must be in (0, 1), got {self.delta!r}")
        if self.epsilon is not None and (not _is_real(self.epsilon) or not 0.0 < self.epsilon < math.inf):
            raise ConfigError(f"DP-SGD epsilon must be a positive finite number or None, got {self.epsilon!r}")
        if not isinstance(self.secure_mode, bool):
            raise ConfigError(f"DP-SGD secure_mode must be a bool, got {self.secure_mode!r}")
        if self.secure_mode and importlib.util.find_spec("torchcsprng") is None:
            raise ConfigError(
                "DP-SGD secure_mode needs the 'torchcsprng' package (cryptographically secure sampling and "
                "noise), which is not installed; install it or set secure_mode=False"
            )


class DpSgdSession:
    """One client's DP-SGD across all rounds of one job: keeps the accountant and the budget between rounds."""

    def __init__(self, config: DpSgdConfig, *, num_examples: int, batch_size: int) -> None:
        if not isinstance(config, DpSgdConfig):
            raise ConfigError(f"config must be a DpSgdConfig, got {type(config).__name__}")
        if not _is_int(num_examples) or num_examples < 1:
            raise ConfigError(f"DP-SGD num_examples must be a positive integer, got {num_examples!r}")
        if not _is_int(batch_size) or not 1 <= batch_size <= num_examples:
            raise ConfigError(
                f"DP-SGD batch_size must be an integer in [1, num_examples={num_examples}], got {batch_size!r}"
            )
        self._config = config
        self._num_examples = int(num_examples)
        self._batch_size = int(batch_size)
        self._accountant, self._budget = self._fresh_accounting()

    def _fresh_accounting(self) -> tuple[RdpAccountant, PrivacyBudget | None]:
        cfg = self._config
        accountant = copy.deepcopy(_blank_accountant(cfg.noise_multiplier, self.sampling_rate, cfg.delta))
        budget = PrivacyBudget(cfg.epsilon, cfg.delta) if cfg.epsilon is not None else None
        return accountant, budget

    @property
    def config(self) -> DpSgdConfig:
        return self._config

    @property
    def sampling_rate(self) -> float:
        """Poisson sampling rate ``q = batch_size / num_examples``."""
        return self._batch_size / self._num_examples

    @property
    def steps_per_epoch(self) -> int:
        """``round(1 / q)``: the expected number of Poisson batches to see every record once."""
        return max(1, round(1.0 / self.sampling_rate))

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far on this client's data (at ``config.delta``)."""
        return self._accountant.epsilon()

    @property
    def steps(self) -> int:
        """DP-SGD steps run so far in this job."""
        return self._accountant.steps

    def would_exceed(self, epochs: int) -> bool:
        """True if ``epochs`` more epochs would overspend the budget (always False without one)."""
        steps = self._steps_for(epochs, allow_zero=True)
        return self._budget is not None and self._budget.would_exceed(self._accountant, steps)

    def train(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        epochs: int,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        proximal: tuple[float, list[torch.Tensor]] | None = None,
        generator: torch.Generator | None = None,
    ) -> float:
        """Run ``epochs`` of DP-SGD on ``model`` in place; return the mean training loss (not private).

        ``x`` and ``y`` hold all ``num_examples`` records of this client (first dimension);
        ``loss_fn`` must average over the batch (PyTorch's default ``reduction="mean"``).
        ``proximal=(mu, global_params)`` adds FedProx's proximal gradient (``global_params`` in
        ``model.parameters()`` order).  ``generator`` drives sampling and noise (ignored in
        ``secure_mode``, which uses a secure generator).  The budget is checked before any step:
        :class:`BudgetExhausted` if the ``epochs * steps_per_epoch`` steps would overspend, and
        then nothing changes.  Afterwards the model's parameters hold the trained values, its
        ``.grad`` are cleared and its train/eval mode is restored.
        """
        total_steps = self._steps_for(epochs, allow_zero=False)
        _check_hyper(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"DP-SGD needs a torch.nn.Module, got {type(model).__name__}")
        check_model(model)
        _check_data(x, y, self._num_examples)
        _check_loss_fn(loss_fn)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("DP-SGD: the model has no trainable parameters")
        prox = _check_proximal(proximal, model)
        if self._budget is not None and self._budget.would_exceed(self._accountant, total_steps):
            after = self._accountant.epsilon_after(total_steps)
            raise BudgetExhausted(
                f"DP-SGD privacy budget exhausted: spent epsilon={self.epsilon:.6g} in {self.steps} steps; "
                f"{epochs} more epoch(s) ({total_steps} steps) would bring it to {after:.6g}, "
                f"limit epsilon={self._config.epsilon:.6g} at delta={self._config.delta:.3g}"
            )
        opacus = _import_opacus()
        rng = _secure_generator() if self._config.secure_mode else generator
        was_training = model.training
        with _quiet_opacus(), _no_inplace(model):
            try:
                gsm = opacus.GradSampleModule(model, batch_first=True, loss_reduction="mean", strict=True)
            except (NotImplementedError, ValueError) as exc:
                _strip_opacus_attributes(model)
                raise ConfigError(f"DP-SGD: Opacus cannot compute per-example gradients for this model: {exc}") from exc
            try:
                model.train()
                optimizer = opacus.DPOptimizer(
                    torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay),
                    noise_multiplier=self._config.noise_multiplier,
                    max_grad_norm=self._config.max_grad_norm,
                    expected_batch_size=self._batch_size,
                    loss_reduction="mean",
                    generator=rng,
                    secure_mode=self._config.secure_mode,
                )
                loss_sum, seen = 0.0, 0
                for _ in range(total_steps):
                    batch_loss, n = self._one_step(gsm, optimizer, params, prox, x, y, loss_fn, rng)
                    loss_sum += batch_loss * n
                    seen += n
            finally:
                gsm.to_standard_module()
                for p in model.parameters():
                    p.grad = None
                model.train(was_training)
        return loss_sum / seen if seen else math.nan

    def _one_step(
        self,
        gsm: nn.Module,
        optimizer: Any,
        params: list[nn.Parameter],
        prox: tuple[float, list[tuple[nn.Parameter, torch.Tensor]]] | None,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        rng: torch.Generator | None,
    ) -> tuple[float, int]:
        """One Poisson-sampled DP-SGD step; the accountant is charged just before the noisy update."""
        optimizer.zero_grad(set_to_none=True)
        mask = torch.rand(self._num_examples, generator=rng, device=rng.device if rng is not None else None)
        idx = torch.nonzero(mask < self.sampling_rate).flatten().to(x.device)
        n = int(idx.numel())
        loss_value = 0.0
        if n > 0:
            out = gsm(x.index_select(0, idx))
            loss = loss_fn(out, y.index_select(0, idx))
            if loss.dim() != 0:
                raise ConfigError(
                    f"DP-SGD loss_fn must return a scalar (the batch mean), got shape {tuple(loss.shape)}"
                )
            loss.backward()  # type: ignore[no-untyped-call]
            loss_value = float(loss.detach())
            missing = [i for i, p in enumerate(params) if getattr(p, "grad_sample", None) is None]
            if missing:
                raise ConfigError(
                    f"DP-SGD: no per-example gradient for {len(missing)} trainable parameter(s) (first: index "
                    f"{missing[0]}): a parameter unused in forward, or gradient checkpointing (DenseNet "
                    "memory_efficient=True); set memory_efficient=False or freeze unused parameters"
                )
        else:  # an empty Poisson sample is still a step: noise only
            for p in params:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)  # type: ignore[attr-defined]
        self._charge_one_step()
        if optimizer.pre_step():
            if prox is not None:
                mu, pairs = prox
                with torch.no_grad():
                    for p, w_global in pairs:
                        if p.grad is not None:
                            p.grad.add_(p.detach() - w_global, alpha=mu)
            optimizer.original_optimizer.step()
        return loss_value, n

    def _charge_one_step(self) -> None:
        if self._budget is not None:
            self._budget.check_and_spend(self._accountant, 1)
        else:
            self._accountant.step(1)

    def _steps_for(self, epochs: int, *, allow_zero: bool) -> int:
        low = 0 if allow_zero else 1
        if not _is_int(epochs) or epochs < low:
            raise ConfigError(f"DP-SGD epochs must be an integer >= {low}, got {epochs!r}")
        return int(epochs) * self.steps_per_epoch

    def state_dict(self) -> dict[str, Any]:
        """Plain, JSON-able state for checkpoints (the accountant, the budget and the parameters they belong to)."""
        cfg = self._config
        return {
            "version": _STATE_VERSION,
            "noise_multiplier": cfg.noise_multiplier,
            "max_grad_norm": cfg.max_grad_norm,
            "delta": cfg.delta,
            "epsilon": cfg.epsilon,
            "num_examples": self._num_examples,
            "batch_size": self._batch_size,
            "accountant": self._accountant.state_dict(),
            "budget": self._budget.state_dict() if self._budget is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the spending; refuses a state saved for other parameters or with inconsistent parts."""
        if not isinstance(state, dict):
            raise ConfigError(f"malformed DP-SGD session state: expected a dict, got {type(state).__name__}")
        cfg = self._config
        mine = {
            "version": _STATE_VERSION,
            "noise_multiplier": cfg.noise_multiplier,
            "max_grad_norm": cfg.max_grad_norm,
            "delta": cfg.delta,
            "epsilon": cfg.epsilon,
            "num_examples": self._num_examples,
            "batch_size": self._batch_size,
        }
        theirs = {key: state.get(key) for key in mine}
        if theirs != mine:
            raise ConfigError(f"DP-SGD session state is for {theirs}; this session is {mine}")
        accountant, budget = self._fresh_accounting()
        acc_state, budget_state = state.get("accountant"), state.get("budget")
        if not isinstance(acc_state, dict) or (budget is None) != (budget_state is None):
            raise ConfigError("malformed DP-SGD session state: bad 'accountant' or 'budget'")
        accountant.load_state_dict(acc_state)
        if budget is not None:
            if not isinstance(budget_state, dict):
                raise ConfigError("malformed DP-SGD session state: bad 'budget'")
            budget.load_state_dict(budget_state)
            spent = accountant.epsilon()
            if abs(budget.spent - spent) > 1e-9 * max(1.0, spent):
                raise ConfigError(
                    f"DP-SGD session state is inconsistent: the accountant has spent epsilon={spent:.6g}, "
                    f"the budget recorded {budget.spent:.6g}"
                )
        self._accountant, self._budget = accountant, budget

    def __repr__(self) -> str:
        return (
            f"DpSgdSession({self._config}, num_examples={self._num_examples}, batch_size={self._batch_size}, "
            f"steps={self.steps}, epsilon={self.epsilon:.4g})"
        )


def check_model(model: nn.Module) -> None:
    """Raise :class:`ConfigError` naming the layers that prevent per-example gradients (BatchNorm etc.)."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"DP-SGD needs a torch.nn.Module, got {type(model).__name__}")
    validators = _import_opacus().ModuleValidator.VALIDATORS
    problems: dict[str, list[str]] = {}  # reason -> layer names
    for name, module in model.named_modules():
        label = f"{name or '<root>'} ({type(module).__name__})"
        trainable = any(p.requires_grad for p in module.parameters(recurse=False))
        reasons: list[str] = []
        if trainable and type(module) in validators:
            reasons += [_first_sentence(err) for err in validators[type(module)](module)]
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            reasons.append("BatchNorm mixes the records of a batch")
        elif trainable and any(True for _ in module.buffers()):
            reasons.append("a trainable layer with buffers (Opacus refuses them)")
        if getattr(module, "memory_efficient", False) is True:
            reasons.append("gradient checkpointing (memory_efficient=True) hides per-example gradients")
        for reason in reasons:
            problems.setdefault(reason, []).append(label)
    if not problems:
        return
    parts = []
    for reason, labels in problems.items():
        more = f" and {len(labels) - _MAX_LISTED} more" if len(labels) > _MAX_LISTED else ""
        parts.append(f"{reason}: {', '.join(labels[:_MAX_LISTED])}{more}")
    if any("BatchNorm" in reason for reason in problems):
        parts.append(_NORM_HINT)
    if any("memory_efficient" in reason for reason in problems):
        parts.append("DenseNet takes options={'memory_efficient': False}")
    raise ConfigError("this model cannot be trained with DP-SGD (no per-example gradients): " + "; ".join(parts))


# -- helpers -------------------------------------------------------------------------------------


class _Opacus:
    """The few Opacus names this module uses, imported lazily (a missing install is a ConfigError)."""

    def __init__(self) -> None:
        try:
            grad_sample = importlib.import_module("opacus.grad_sample")
            optimizers = importlib.import_module("opacus.optimizers")
            validators = importlib.import_module("opacus.validators")
        except ImportError as exc:  # pragma: no cover - opacus is a pinned dependency
            raise ConfigError(f"DP-SGD needs the 'opacus' package, which could not be imported: {exc}") from exc
        self.GradSampleModule: Any = grad_sample.GradSampleModule
        self.DPOptimizer: Any = optimizers.DPOptimizer
        self.ModuleValidator: Any = validators.ModuleValidator


@functools.lru_cache(maxsize=32)
def _blank_accountant(noise_multiplier: float, sampling_rate: float, delta: float) -> RdpAccountant:
    """A zero-step accountant per parameter set (its per-step RDP takes a while); callers get deep copies."""
    return RdpAccountant(noise_multiplier, sampling_rate, delta)


@functools.cache
def _import_opacus() -> _Opacus:
    with _quiet_opacus():
        return _Opacus()


def _strip_opacus_attributes(model: nn.Module) -> None:
    """Remove what a half-built GradSampleModule leaves on the parameters."""
    for p in model.parameters():
        for attr in ("grad_sample", "_forward_counter"):
            if hasattr(p, attr):
                delattr(p, attr)


def _secure_generator() -> torch.Generator:
    try:
        csprng: Any = importlib.import_module("torchcsprng")
    except ImportError as exc:
        raise ConfigError(f"DP-SGD secure_mode needs the 'torchcsprng' package: {exc}") from exc
    gen: torch.Generator = csprng.create_random_device_generator("/dev/urandom")
    return gen


@contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Silence Opacus's (and torch's hook and vmap) UserWarnings here only, not process-wide."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"opacus(\.|$)")
        warnings.filterwarnings("ignore", category=UserWarning, message=r"Full backward hook is firing")
        warnings.filterwarnings("ignore", category=UserWarning, message=r"There is a performance drop")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"opacus(\.|$)")
        yield


@contextmanager
def _no_inplace(model: nn.Module) -> Iterator[None]:
    """Turn off ``inplace=True`` activations (Opacus's backward hooks forbid them); restore them afterwards."""
    switched = [m for m in model.modules() if getattr(m, "inplace", None) is True]
    for module in switched:
        module.inplace = False  # type: ignore[assignment]
    try:
        yield
    finally:
        for module in switched:
            module.inplace = True  # type: ignore[assignment]


def _check_hyper(*, lr: float, momentum: float, weight_decay: float) -> None:
    if not _is_real(lr) or not 0.0 < lr < math.inf:
        raise ConfigError(f"DP-SGD lr must be a positive finite number, got {lr!r}")
    if not _is_real(momentum) or not 0.0 <= momentum < 1.0:
        raise ConfigError(f"DP-SGD momentum must be in [0, 1), got {momentum!r}")
    if not _is_real(weight_decay) or not 0.0 <= weight_decay < math.inf:
        raise ConfigError(f"DP-SGD weight_decay must be a non-negative finite number, got {weight_decay!r}")


def _check_data(x: torch.Tensor, y: torch.Tensor, num_examples: int) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ConfigError("DP-SGD x and y must be torch tensors")
    if x.dim() == 0 or y.dim() == 0 or x.shape[0] != num_examples or y.shape[0] != num_examples:
        raise ConfigError(
            f"DP-SGD x and y must hold all num_examples={num_examples} records (first dimension), "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}; the sampling rate (and so epsilon) depends on it"
        )


def _check_loss_fn(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    if not callable(loss_fn):
        raise ConfigError("DP-SGD loss_fn must be callable")
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction != "mean":
        raise ConfigError(f"DP-SGD loss_fn must average over the batch (reduction='mean'), got reduction={reduction!r}")


def _check_proximal(
    proximal: tuple[float, list[torch.Tensor]] | None, model: nn.Module
) -> tuple[float, list[tuple[nn.Parameter, torch.Tensor]]] | None:
    if proximal is None:
        return None
    try:
        mu, global_params = proximal
    except (TypeError, ValueError) as exc:
        raise ConfigError("DP-SGD proximal must be (mu, [global parameters])") from exc
    if not _is_real(mu) or not 0.0 <= mu < math.inf:
        raise ConfigError(f"DP-SGD proximal mu must be a non-negative finite number, got {mu!r}")
    all_params = list(model.parameters())
    if len(global_params) != len(all_params):
        raise ConfigError(
            f"DP-SGD proximal needs one global tensor per model parameter ({len(all_params)}), got {len(global_params)}"
        )
    pairs: list[tuple[nn.Parameter, torch.Tensor]] = []
    for i, (p, g) in enumerate(zip(all_params, global_params, strict=True)):
        if not isinstance(g, torch.Tensor) or g.shape != p.shape:
            shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise ConfigError(f"DP-SGD proximal: global parameter {i} has shape {shape}, the model's {tuple(p.shape)}")
        if p.requires_grad:
            pairs.append((p, g.detach().to(device=p.device, dtype=p.dtype)))
    return float(mu), pairs


def _first_sentence(err: object) -> str:
    text = str(err).strip()
    return text.split(". ")[0].rstrip(".")


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
