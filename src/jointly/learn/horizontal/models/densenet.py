"""Densely connected networks (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

DenseNet-BC: every dense layer is ``norm -> ReLU -> Conv1x1 (bn_size * growth)
-> norm -> ReLU -> Conv3x3 (growth)`` and sees the concatenation of all earlier
feature maps of its block; transitions halve channels (compression 0.5) and
resolution (2x2 average pool).  Growth rate 32, ``bn_size`` 4, 64 initial
features; DenseNet-121 has blocks (6, 12, 24, 16), DenseNet-201 (6, 12, 48, 32).
Layer names, layout and initialisation follow torchvision, so with 3 channels,
1000 classes and the ImageNet stem the parameter counts equal torchvision's
(DenseNet-121 7,978,856; DenseNet-201 20,013,928).

Memory: with ``memory_efficient=True`` (default) the concatenation and 1x1
bottleneck of each layer are recomputed in the backward pass (gradient
checkpointing) instead of being stored, which cuts activation memory from
quadratic to linear in the block depth for some 15-20 % more compute.

Stems as in :mod:`.resnet`: ``"imagenet"`` (7x7 stride 2 + max-pool), ``"cifar"``
(one 3x3 stride-1 convolution, no pool) and ``"auto"`` (``"cifar"`` up to 64 pixels).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional
from torch.utils.checkpoint import checkpoint

from jointly.errors import ConfigError
from jointly.learn.horizontal.models._layers import NormKind, check_image_model, check_norm, make_norm

BLOCKS: dict[str, tuple[int, ...]] = {
    "densenet121": (6, 12, 24, 16),
    "densenet201": (6, 12, 48, 32),
}


class DenseLayer(nn.Module):
    """One BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 layer adding ``growth_rate`` channels."""

    def __init__(
        self, cin: int, *, growth_rate: int, bn_size: int, drop_rate: float, norm: NormKind, memory_efficient: bool
    ) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
        self.norm2 = make_norm(norm, bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *inputs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))
        return out

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """New ``growth_rate`` feature maps from all previous ones."""
        if self.memory_efficient and self.training and any(t.requires_grad for t in features):
            bottleneck = checkpoint(self._bottleneck, *features, use_reentrant=False)
        else:
            bottleneck = self._bottleneck(*features)
        out: torch.Tensor = self.conv2(self.relu2(self.norm2(bottleneck)))
        if self.drop_rate > 0:
            out = functional.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; output is the concatenation of the input and every layer's output."""

    def __init__(
        self,
        num_layers: int,
        cin: int,
        *,
        growth_rate: int,
        bn_size: int,
        drop_rate: float,
        norm: NormKind,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(
                cin + i * growth_rate,
                growth_rate=growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
                norm=norm,
                memory_efficient=memory_efficient,
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate ``x`` and all layers' outputs along channels."""
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """norm -> ReLU -> Conv1x1 (halves channels) -> AvgPool 2x2."""

    def __init__(self, cin: int, cout: int, norm: NormKind) -> None:
        super().__init__()
        self.add_module("norm", make_norm(norm, cin))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(cin, cout, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, stride=2))


class DenseNet(nn.Module):
    """DenseNet-121/201 for ``(batch, in_channels, image_size, image_size)`` inputs."""

    def __init__(
        self,
        depth: str,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int,
        growth_rate: int = 32,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        stem: str = "auto",
        norm: str = "batch",
        memory_efficient: bool = True,
    ) -> None:
        super().__init__()
        if depth not in BLOCKS:
            raise ConfigError(f"DenseNet: unknown depth {depth!r}; choose one of {sorted(BLOCKS)}")
        stem_kind = check_image_model(
            "DenseNet", in_channels=in_channels, num_classes=num_classes, image_size=image_size, stem=stem
        )
        if growth_rate < 1 or bn_size < 1:
            raise ConfigError(f"DenseNet: growth_rate and bn_size must be >= 1, got {growth_rate}, {bn_size}")
        if not 0.0 <= drop_rate < 1.0:
            raise ConfigError(f"DenseNet: drop_rate must be in [0, 1), got {drop_rate}")
        kind = check_norm(norm, where="DenseNet")
        self.stem_kind = stem_kind
        init = 2 * growth_rate
        self.features = nn.Sequential()
        if stem_kind == "imagenet":
            self.features.add_module("conv0", nn.Conv2d(in_channels, init, 7, stride=2, padding=3, bias=False))
        else:
            self.features.add_module("conv0", nn.Conv2d(in_channels, init, 3, padding=1, bias=False))
        self.features.add_module("norm0", make_norm(kind, init))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        if stem_kind == "imagenet":
            self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))

        channels = init
        blocks = BLOCKS[depth]
        for i, num_layers in enumerate(blocks):
            block = DenseBlock(
                num_layers,
                channels,
                growth_rate=growth_rate,
                bn_size=bn_size,
                drop_rate=drop_rate,
                norm=kind,
                memory_efficient=memory_efficient,
            )
            self.features.add_module(f"denseblock{i + 1}", block)
            channels += num_layers * growth_rate
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2, kind))
                channels //= 2
        self.features.add_module("norm5", make_norm(kind, channels))
        self.classifier = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images to ``(batch, num_classes)`` logits."""
        out = functional.relu(self.features(x))
        logits: torch.Tensor = self.classifier(torch.flatten(functional.adaptive_avg_pool2d(out, 1), 1))
        return logits
