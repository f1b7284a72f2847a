"""Multi-layer perceptron for tabular data.

``Linear -> ReLU -> Dropout`` per hidden layer, then a linear head.  With
``num_classes == 1`` the head gives a single logit (binary task, pair it with
``BCEWithLogitsLoss``); otherwise one logit per class (``CrossEntropyLoss``).
No normalisation layer: every party standardises its own columns before training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jointly.errors import ConfigError


class MLP(nn.Module):
    """Fully connected network ``in_features -> hidden... -> num_classes``."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_features < 1:
            raise ConfigError(f"MLP: in_features must be >= 1, got {in_features}")
        if num_classes < 1:
            raise ConfigError(f"MLP: num_classes must be >= 1, got {num_classes}")
        if any(h < 1 for h in hidden):
            raise ConfigError(f"MLP: hidden sizes must be >= 1, got {tuple(hidden)}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"MLP: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, in_features)`` (or any shape flattening to it) to ``(batch, num_classes)``."""
        if x.dim() != 2:
            x = x.flatten(1)
        out: torch.Tensor = self.net(x)
        return out
