"""Residual networks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

ResNet-18/34 stack :class:`BasicBlock` (two 3x3 convolutions), ResNet-50 stacks
:class:`Bottleneck` (1x1 -> 3x3 -> 1x1, expansion 4, stride on the 3x3 as in
torchvision's "v1.5").  Shortcuts are identities, or a strided 1x1 convolution
plus norm when the shape changes (option B of the paper).

Stems:

* ``"imagenet"``: 7x7 stride-2 convolution and a 3x3 stride-2 max-pool, as in the
  paper; with 3 channels, 1000 classes and batch norm the parameter counts equal
  torchvision's (ResNet-18 11,689,512; ResNet-34 21,797,672; ResNet-50 25,557,032).
* ``"cifar"``: a single 3x3 stride-1 convolution and no max-pool (He et al.,
  section 4.2), so a 28x28 or 32x32 image is not shrunk to 7x7/8x8 before the
  first block.
* ``"auto"`` (default) picks ``"cifar"`` for images of at most 64 pixels and ``"imagenet"`` above.

Weights are initialised as torchvision does (Kaiming-normal convolutions, norm
scale 1 and shift 0); ``zero_init_residual`` zeroes the last norm scale of every block.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from jointly.errors import ConfigError
from jointly.learn.horizontal.models._layers import NormKind, check_image_model, check_norm, make_norm

"""Images of at most this many pixels a side get the CIFAR-style stem under ``stem="auto"``."""

LAYERS: dict[str, tuple[Literal["basic", "bottleneck"], tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _shortcut(cin: int, cout: int, stride: int, norm: NormKind) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), make_norm(norm, cout))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut; ``out = relu(F(x) + shortcut(x))``."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, norm: NormKind) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = make_norm(norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes, stride, norm)

    def last_norm(self) -> nn.Module:
        """The norm whose scale ``zero_init_residual`` zeroes."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual step."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res: torch.Tensor = self.relu(out + self.downsample(x))
        return res


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, plus a shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, norm: NormKind) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = make_norm(norm, planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = make_norm(norm, out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, out, stride, norm)

    def last_norm(self) -> nn.Module:
        """The norm whose scale ``zero_init_residual`` zeroes."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual step."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res: torch.Tensor = self.relu(out + self.downsample(x))
        return res


class ResNet(nn.Module):
    """ResNet-18/34/50 for ``(batch, in_channels, image_size, image_size)`` inputs."""

    def __init__(
        self,
        depth: str,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int,
        stem: str = "auto",
        norm: str = "batch",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if depth not in LAYERS:
            raise ConfigError(f"ResNet: unknown depth {depth!r}; choose one of {sorted(LAYERS)}")
        stem_kind = check_image_model(
            "ResNet", in_channels=in_channels, num_classes=num_classes, image_size=image_size, stem=stem
        )
        kind = check_norm(norm, where="ResNet")
        self.stem_kind = stem_kind
        if stem_kind == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = _conv3x3(in_channels, 64)
            self.maxpool = nn.Identity()
        self.bn1 = make_norm(kind, 64)
        self.relu = nn.ReLU(inplace=True)

        block_kind, counts = LAYERS[depth]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if block_kind == "basic" else Bottleneck
        cin = 64
        stages: list[nn.Sequential] = []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
            blocks: list[nn.Module] = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(cin, planes, stride, kind))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights(zero_init_residual=zero_init_residual)

    def _init_weights(self, *, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    last = m.last_norm()
                    if isinstance(last, nn.BatchNorm2d | nn.GroupNorm):
                        nn.init.zeros_(last.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images to ``(batch, num_classes)`` logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        out: torch.Tensor = self.fc(torch.flatten(self.avgpool(x), 1))
        return out
