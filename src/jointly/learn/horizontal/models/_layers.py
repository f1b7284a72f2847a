"""Small building blocks shared by the image families."""

from __future__ import annotations

import math
from typing import Literal, get_args

from torch import nn

from jointly.errors import ConfigError

NormKind = Literal["batch", "group", "none"]
StemKind = Literal["imagenet", "cifar"]
SMALL_IMAGE_MAX = 64  # images up to this size get the CIFAR-style stem (3x3 conv, no max-pool)
NORM_KINDS: tuple[str, ...] = get_args(NormKind)


def check_norm(norm: str, *, where: str) -> NormKind:
    """Return ``norm`` as a :data:`NormKind`, or raise :class:`ConfigError`."""
    if norm == "batch":
        return "batch"
    if norm == "group":
        return "group"
    if norm == "none":
        return "none"
    raise ConfigError(f"{where}: norm must be one of {NORM_KINDS}, got {norm!r}")


def make_norm(norm: NormKind, channels: int) -> nn.Module:
    """A normalisation layer over ``channels`` feature maps.

    ``"batch"`` is BatchNorm2d (its running statistics are buffers and are
    averaged with the weights in FedAvg); ``"group"`` is GroupNorm with up to 32
    groups and no buffers, which behaves better when parties' data differ
    (non-IID); both have the same learnable parameters (a scale and a shift per
    channel).  ``"none"`` is the identity.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    return nn.Identity()


def check_image_model(where: str, *, in_channels: int, num_classes: int, image_size: int, stem: str) -> StemKind:
    """Check the arguments every convolutional family shares; return the stem to build.

    ``stem="auto"`` picks the CIFAR-style stem for images up to :data:`SMALL_IMAGE_MAX` pixels
    and the paper's ImageNet stem (7x7 stride-2 convolution, max-pool) above.
    """
    if in_channels < 1 or num_classes < 1:
        raise ConfigError(f"{where}: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
    if image_size < 8:
        raise ConfigError(f"{where}: image_size must be >= 8, got {image_size}")
    if stem == "auto":
        return "cifar" if image_size <= SMALL_IMAGE_MAX else "imagenet"
    if stem == "imagenet":
        return "imagenet"
    if stem == "cifar":
        return "cifar"
    raise ConfigError(f"{where}: stem must be 'auto', 'imagenet' or 'cifar', got {stem!r}")
