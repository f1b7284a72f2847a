"""Build a model from a :class:`ModelSpec`, and move its weights to and from numpy for federated averaging.

Every party of a horizontal job builds the same architecture from the same
spec (it is part of the job every party approves); only weight arrays travel.

``get_weights`` returns the whole ``state_dict`` in its order, **buffers
included** (BatchNorm running means, variances and ``num_batches_tracked``), as
float32 copies.  A FedAvg server therefore averages running statistics along
with the weights, as Flower's and FATE's PyTorch clients do; choose
``options={"norm": "group"}`` (CNN, ResNet, DenseNet) for a model without
buffers when parties' data differ strongly.  What the weights reveal about a
party's data is the business of the aggregation protocol (secure aggregation,
differential privacy), not of this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from jointly.errors import ConfigError
from jointly.learn.horizontal.models.cnn import SmallCNN
from jointly.learn.horizontal.models.densenet import DenseNet
from jointly.learn.horizontal.models.mlp import MLP
from jointly.learn.horizontal.models.resnet import ResNet
from jointly.learn.horizontal.models.vit import PRESETS, VisionTransformer, ViTConfig

Family = Literal[
    "mlp", "cnn", "resnet18", "resnet34", "resnet50", "densenet121", "densenet201", "vit_small", "vit_tiny"
]
FAMILIES: tuple[str, ...] = get_args(Family)

OptionValue = int | float | str | bool | tuple[int, ...]

OPTIONS: dict[str, frozenset[str]] = {
    "mlp": frozenset({"dropout"}),
    "cnn": frozenset({"widths", "head", "dropout", "norm"}),
    "resnet": frozenset({"stem", "norm", "zero_init_residual"}),
    "densenet": frozenset({"stem", "norm", "memory_efficient", "drop_rate", "growth_rate", "bn_size"}),
    "vit": frozenset({"patch_size", "dim", "depth", "heads", "mlp_ratio", "dropout"}),
}
"""Option names each family accepts in :attr:`ModelSpec.options`; anything else is a :class:`ConfigError`."""


@dataclass(frozen=True)
class ModelSpec:
    """Which network to build.

    ``in_features`` and ``hidden`` apply to ``"mlp"``; ``in_channels`` and
    ``image_size`` (square images) to the image families.  ``num_classes == 1``
    gives a single logit (binary task).  ``options`` holds family-specific
    settings (see :data:`OPTIONS` and each family's module); lists are turned into
    tuples, so a spec read from JSON equals (and hashes like) one written in Python.
    """

    family: Family
    num_classes: int = 2
    in_channels: int = 1
    image_size: int | None = None
    in_features: int | None = None
    hidden: tuple[int, ...] = (64,)
    options: Mapping[str, OptionValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"ModelSpec.options must be a mapping, got {type(self.options).__name__}")
        given: Mapping[str, object] = self.options
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
        object.__setattr__(self, "options", options)

    def __hash__(self) -> int:
        shape = (self.family, self.num_classes, self.in_channels, self.image_size, self.in_features, self.hidden)
        return hash((*shape, tuple(sorted(self.options.items()))))


def _positive(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"ModelSpec: {name} must be a positive integer, got {value!r}")
    return value


class _Options:
    """Typed reads of ``ModelSpec.options`` with precise errors."""

    def __init__(self, family: str, group: str, options: Mapping[str, OptionValue]) -> None:
        unknown = sorted(set(options) - OPTIONS[group])
        if unknown:
            raise ConfigError(f"ModelSpec: family {family!r} has no options {unknown}; known: {sorted(OPTIONS[group])}")
        self.family = family
        self.options = options

    def get_int(self, key: str, default: int) -> int:
        return _positive(self.options.get(key, default), f"options[{key!r}]")

    def get_float(self, key: str, default: float) -> float:
        value = self.options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"ModelSpec: options[{key!r}] must be a number, got {value!r}")
        return float(value)

    def get_str(self, key: str, default: str) -> str:
        value = self.options.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"ModelSpec: options[{key!r}] must be a string, got {value!r}")
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.options.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"ModelSpec: options[{key!r}] must be true or false, got {value!r}")
        return value

    def get_ints(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.options.get(key, default)
        if not isinstance(value, tuple):
            raise ConfigError(f"ModelSpec: options[{key!r}] must be a list of integers, got {value!r}")
        return tuple(_positive(v, f"options[{key!r}]") for v in value)


def _image_size(spec: ModelSpec) -> int:
    if spec.image_size is None:
        raise ConfigError(f"ModelSpec: family {spec.family!r} needs image_size")
    return _positive(spec.image_size, "image_size")


def build_model(spec: ModelSpec) -> nn.Module:
    """Build a freshly initialised model (seed torch first for reproducible weights).

    Raises :class:`ConfigError` for an unknown family, a missing or invalid
    parameter, or an option the family does not know.
    """
    if spec.family not in FAMILIES:
        raise ConfigError(f"ModelSpec: unknown family {spec.family!r}; choose one of {list(FAMILIES)}")
    classes = _positive(spec.num_classes, "num_classes")
    if spec.family == "mlp":
        opts = _Options(spec.family, "mlp", spec.options)
        if spec.in_features is None:
            raise ConfigError("ModelSpec: family 'mlp' needs in_features")
        hidden = tuple(_positive(h, "hidden") for h in spec.hidden)
        return MLP(
            _positive(spec.in_features, "in_features"), classes, hidden=hidden, dropout=opts.get_float("dropout", 0.0)
        )
    channels = _positive(spec.in_channels, "in_channels")
    size = _image_size(spec)
    if spec.family == "cnn":
        opts = _Options(spec.family, "cnn", spec.options)
        return SmallCNN(
            channels,
            classes,
            image_size=size,
            widths=opts.get_ints("widths", (32, 64)),
            head=opts.get_int("head", 128),
            dropout=opts.get_float("dropout", 0.25),
            norm=opts.get_str("norm", "batch"),
        )
    if spec.family in ("resnet18", "resnet34", "resnet50"):
        opts = _Options(spec.family, "resnet", spec.options)
        return ResNet(
            spec.family,
            channels,
            classes,
            image_size=size,
            stem=opts.get_str("stem", "auto"),
            norm=opts.get_str("norm", "batch"),
            zero_init_residual=opts.get_bool("zero_init_residual", False),
        )
    if spec.family in ("densenet121", "densenet201"):
        opts = _Options(spec.family, "densenet", spec.options)
        return DenseNet(
            spec.family,
            channels,
            classes,
            image_size=size,
            growth_rate=opts.get_int("growth_rate", 32),
            bn_size=opts.get_int("bn_size", 4),
            drop_rate=opts.get_float("drop_rate", 0.0),
            stem=opts.get_str("stem", "auto"),
            norm=opts.get_str("norm", "batch"),
            memory_efficient=opts.get_bool("memory_efficient", True),
        )
    opts = _Options(spec.family, "vit", spec.options)
    preset = PRESETS[spec.family]
    config = ViTConfig(
        image_size=size,
        patch_size=opts.get_int("patch_size", 16 if size > 64 else 4),
        dim=opts.get_int("dim", preset["dim"]),
        depth=opts.get_int("depth", preset["depth"]),
        heads=opts.get_int("heads", preset["heads"]),
        mlp_ratio=opts.get_float("mlp_ratio", 4.0),
        dropout=opts.get_float("dropout", 0.0),
    )
    return VisionTransformer(channels, classes, config)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter scalars (buffers not counted), as torchvision and papers report them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Float32 copies of every ``state_dict`` entry, parameters and buffers, in ``state_dict`` order."""
    return [t.detach().cpu().numpy().astype(np.float32, copy=True) for t in model.state_dict().values()]


def set_weights(model: nn.Module, arrays: Sequence[np.ndarray]) -> None:
    """Load arrays from :func:`get_weights` (or an average of them) into ``model`` in place.

    Strict: the number of arrays and each shape must match the model's
    ``state_dict`` and every value must be a finite number, or :class:`ConfigError`
    is raised and the model is left untouched.  Values are cast to each entry's
    dtype (integer buffers such as ``num_batches_tracked`` are rounded).
    """
    state = model.state_dict()
    if len(arrays) != len(state):
        raise ConfigError(f"set_weights: model has {len(state)} tensors, got {len(arrays)} arrays")
    checked: list[np.ndarray] = []
    for (name, tensor), array in zip(state.items(), arrays, strict=True):
        arr = np.asarray(array)
        if arr.dtype.kind not in "biuf":
            raise ConfigError(f"set_weights: {name}: expected numbers, got dtype {arr.dtype}")
        if tuple(arr.shape) != tuple(tensor.shape):
            raise ConfigError(f"set_weights: {name}: expected shape {tuple(tensor.shape)}, got {tuple(arr.shape)}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ConfigError(f"set_weights: {name}: contains NaN or infinity")
        checked.append(arr)
    with torch.no_grad():
        for tensor, arr in zip(state.values(), checked, strict=True):
            source = torch.from_numpy(np.array(arr, order="C", copy=True))
            if not tensor.is_floating_point() and source.is_floating_point():
                source = source.round()
            tensor.copy_(source.to(tensor.dtype))
