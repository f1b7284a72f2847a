"""A small convolutional network for small images (8x8 digits, 28x28 MedMNIST, 32x32).

Each block is ``Conv3x3 -> norm -> ReLU -> MaxPool2`` (the pooling is skipped
once the feature map is smaller than 4x4, so 8x8 inputs keep a 2x2 map), then
``Flatten -> Dropout -> Linear(., head) -> ReLU -> Linear(head, classes)``.
Defaults: two blocks of 32 and 64 channels and a 128-unit head, about 0.4 M
parameters at 28x28.  A third block (``widths=(32, 64, 128)``) suits 32x32 colour images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from jointly.errors import ConfigError
from jointly.learn.horizontal.models._layers import check_norm, make_norm


class SmallCNN(nn.Module):
    """``len(widths)`` conv blocks and a two-layer head; input ``(batch, in_channels, image_size, image_size)``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int,
        widths: Sequence[int] = (32, 64),
        head: int = 128,
        dropout: float = 0.25,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        kind = check_norm(norm, where="SmallCNN")
        if in_channels < 1 or num_classes < 1:
            raise ConfigError(f"SmallCNN: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}")
        if image_size < 4:
            raise ConfigError(f"SmallCNN: image_size must be >= 4, got {image_size}")
        if not widths or len(widths) > 4 or any(w < 1 for w in widths):
            raise ConfigError(f"SmallCNN: widths must be 1 to 4 positive channel counts, got {tuple(widths)}")
        if head < 1:
            raise ConfigError(f"SmallCNN: head must be >= 1, got {head}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"SmallCNN: dropout must be in [0, 1), got {dropout}")
        blocks: list[nn.Module] = []
        channels, size = in_channels, image_size
        for width in widths:
            blocks += [
                nn.Conv2d(channels, width, 3, padding=1, bias=kind == "none"),
                make_norm(kind, width),
                nn.ReLU(inplace=True),
            ]
            if size >= 4:
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            channels = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels * size * size, head),
            nn.ReLU(inplace=True),
            nn.Linear(head, num_classes),
        )
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, C, H, W)`` images (``H == W == image_size``) to ``(batch, num_classes)`` logits."""
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ConfigError(f"SmallCNN: built for {self.image_size}px images, got {tuple(x.shape[-2:])}")
        out: torch.Tensor = self.classifier(self.features(x))
        return out
