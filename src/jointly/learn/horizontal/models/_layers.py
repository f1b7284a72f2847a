"""Small building blocks shared by the image families."""

from __future__ import annotations

import math
from typing import Literal, get_args

from torch import nn

from jointly.errors import ConfigError

NormKind = Literal["batch", "group", "none"]
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
