"""A Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021).

The image is cut into non-overlapping ``patch_size`` squares by a strided
convolution, a learned class token is prepended, learned position embeddings
are added, and ``depth`` pre-norm encoder blocks follow
(``x + Attn(LN(x))``, then ``x + MLP(LN(x))`` with GELU); the head is
``LayerNorm -> Linear`` on the class token.  Attention is our own
multi-head implementation over :func:`torch.nn.functional.scaled_dot_product_attention`.

Presets (DeiT sizes): ``vit_tiny`` dim 192, 3 heads; ``vit_small`` dim 384, 6 heads; both depth 12, MLP ratio 4.
Without pre-training a ViT needs much more data than a CNN of the same size;
for small federated image sets prefer :mod:`.resnet` or :mod:`.cnn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from jointly.errors import ConfigError


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a Vision Transformer.  ``image_size`` must be a multiple of ``patch_size``; ``dim`` of ``heads``."""

    image_size: int = 32
    patch_size: int = 4
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "dim", "depth", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ViTConfig: {name} must be a positive integer, got {value!r}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"ViTConfig: image_size {self.image_size} is not divisible by patch_size {self.patch_size}"
            )
        if self.dim % self.heads:
            raise ConfigError(f"ViTConfig: dim {self.dim} is not divisible by heads {self.heads}")
        if not self.mlp_ratio > 0:
            raise ConfigError(f"ViTConfig: mlp_ratio must be > 0, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ViTConfig: dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_patches(self) -> int:
        """Number of patch tokens (without the class token)."""
        return (self.image_size // self.patch_size) ** 2


PRESETS: dict[str, dict[str, int]] = {
    "vit_tiny": {"dim": 192, "depth": 12, "heads": 3},
    "vit_small": {"dim": 384, "depth": 12, "heads": 6},
}


class Attention(nn.Module):
    """Multi-head self-attention: a fused ``qkv`` projection, scaled dot products, an output projection."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, dim) -> (batch, tokens, dim)``."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = functional.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        res: torch.Tensor = self.proj(out.transpose(1, 2).reshape(b, n, d))
        return res


class EncoderBlock(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        hidden = round(config.dim * config.mlp_ratio)
        self.norm1 = nn.LayerNorm(config.dim, eps=1e-6)
        self.attn = Attention(config.dim, config.heads, config.dropout)
        self.norm2 = nn.LayerNorm(config.dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, config.dim),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention then MLP, each with a residual connection."""
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class VisionTransformer(nn.Module):
    """ViT classifier for ``(batch, in_channels, image_size, image_size)`` inputs."""

    def __init__(self, in_channels: int, num_classes: int, config: ViTConfig) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ConfigError(
                f"VisionTransformer: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}"
            )
        self.config = config
        self.patch_embed = nn.Conv2d(in_channels, config.dim, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.dim))
        self.pos_drop = nn.Dropout(config.dropout)
        self.blocks = nn.Sequential(*(EncoderBlock(config) for _ in range(config.depth)))
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.head = nn.Linear(config.dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images to ``(batch, num_classes)`` logits."""
        size = self.config.image_size
        if x.shape[-1] != size or x.shape[-2] != size:
            raise ConfigError(f"VisionTransformer: built for {size}px images, got {tuple(x.shape[-2:])}")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.pos_drop(torch.cat([cls, tokens], dim=1) + self.pos_embed)
        tokens = self.norm(self.blocks(tokens))
        out: torch.Tensor = self.head(tokens[:, 0])
        return out
