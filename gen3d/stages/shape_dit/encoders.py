"""Image encoders giving the DiT its conditions: "pixel" tokens (DINOv2's role), "semantic" tokens and
"semantic_cls" (CLIP's role). The `tiny` preset trains a small ViT with the DiT, since no pretrained
weights are reachable here; real frozen encoders load from local folders (see issue 7)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gen3d.nn.layers import TransformerBlock, sincos_2d

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as DINOv2 and timm models expect
STD = (0.229, 0.224, 0.225)


@dataclass
class TinyEncoderConfig:
    image_size: int = 128
    patch: int = 16
    width: int = 128
    heads: int = 4
    pixel_layers: int = 2  # blocks before the pixel tokens are read
    semantic_layers: int = 2  # further blocks before the semantic tokens are read


class TinyImageEncoder(nn.Module):
    """A small ViT: (B, 3, S, S) images in [0, 1] -> {"pixel": (B, P, W), "semantic": (B, P + 1, W),
    "semantic_cls": (B, W)}; pixel tokens come from an earlier layer than the semantic ones."""

    def __init__(self, cfg: TinyEncoderConfig):
        super().__init__()
        if cfg.image_size % cfg.patch:
            raise ValueError(f"image_size {cfg.image_size} must be a multiple of patch {cfg.patch}")
        self.config = cfg
        grid = cfg.image_size // cfg.patch
        self.stem = nn.Conv2d(3, cfg.width, cfg.patch, stride=cfg.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.register_buffer("pos", sincos_2d(cfg.width, grid, grid), persistent=False)  # (P, W)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.pixel_blocks = nn.ModuleList(TransformerBlock(cfg.width, cfg.heads) for _ in range(cfg.pixel_layers))
        self.semantic_blocks = nn.ModuleList(TransformerBlock(cfg.width, cfg.heads) for _ in range(cfg.semantic_layers))
        self.pixel_norm, self.semantic_norm = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem((images - self.mean) / self.std).flatten(2).transpose(1, 2) + self.pos  # (B, P, W)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + P, W)
        for block in self.pixel_blocks:
            x = block(x)
        pixel = self.pixel_norm(x[:, 1:])  # (B, P, W)
        for block in self.semantic_blocks:
            x = block(x)
        semantic = self.semantic_norm(x)  # (B, 1 + P, W)
        return {"pixel": pixel, "semantic": semantic, "semantic_cls": semantic[:, 0]}
