"""Image encoders giving the DiT its conditions: "pixel" tokens (DINOv2's role), "semantic" tokens and
"semantic_cls" (CLIP's role). The `tiny` preset trains a small ViT with the DiT, since no pretrained
weights are reachable here; real frozen encoders (timm DINOv2, open_clip CLIP) load from local
folders of safetensors when a user has the weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


# ------------------------------------------------------------------ real frozen encoders (local folders)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _read_folder(folder: str | Path, library: str) -> tuple[dict, dict]:
    """(config.json, safetensors state dict) of a local encoder folder; never unpickles."""
    from safetensors.torch import load_file

    from gen3d.utils.checkpoint import CheckpointError

    folder = Path(folder)
    config_path, weights = folder / "config.json", folder / "model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{folder}: an encoder folder needs config.json and model.safetensors "
                              "(convert .bin/.pt files once with torch.load(weights_only=True))")
    config = json.loads(config_path.read_text())
    if library == "open_clip" and "model_name" not in config:
        raise CheckpointError(f"{config_path}: needs \"model_name\" (an open_clip architecture such as ViT-L-14)")
    if library == "timm" and "architecture" not in config:
        raise CheckpointError(f"{config_path}: needs \"architecture\" (a timm model such as "
                              "vit_large_patch14_dinov2.lvd142m)")
    return config, load_file(str(weights))


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"real image encoders need {module}: pip install 'gen3d[encoders]'") from exc


def load_dinov2(folder: str | Path) -> nn.Module:
    """A timm DINOv2 (Hugging Face hub layout: config.json with "architecture" + model.safetensors)."""
    timm = _require("timm")
    config, state = _read_folder(folder, "timm")
    model = timm.create_model(config["architecture"], pretrained=False, img_size=config.get("img_size", 224))
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


def load_clip_visual(folder: str | Path) -> nn.Module:
    """The visual tower of an open_clip CLIP (config.json with "model_name" + model.safetensors holding the
    full open_clip state dict, or only its `visual.*` keys)."""
    open_clip = _require("open_clip")
    config, state = _read_folder(folder, "open_clip")
    model = open_clip.create_model(config["model_name"], pretrained=None)
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    model.visual.load_state_dict(visual or state)
    return model.visual.eval().requires_grad_(False)


class FrozenImageEncoders(nn.Module):
    """Direct3D's conditions from real encoders: DINOv2 tokens (final norm) as "pixel" tokens, CLIP's
    last hidden state (class token first) as "semantic" tokens and its class token as "semantic_cls"."""

    def __init__(self, dinov2: nn.Module, clip_visual: nn.Module, image_size: int = 224):
        super().__init__()
        self.dinov2, self.clip = dinov2, clip_visual
        self.image_size = image_size
        self.register_buffer("dino_mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("dino_std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.nn.functional.interpolate(images, size=(self.image_size,) * 2, mode="bicubic", align_corners=False)
        pixel = self.dinov2.forward_features((x - self.dino_mean) / self.dino_std)  # (B, 1 + N, D_dino)
        hidden: list[torch.Tensor] = []
        hook = self.clip.transformer.register_forward_hook(lambda module, args, out: hidden.append(out))
        try:
            self.clip((x - self.clip_mean) / self.clip_std)
        finally:
            hook.remove()
        semantic = hidden[0]  # (B, 1 + N, D_clip): the transformer's output before ln_post
        return {"pixel": pixel, "semantic": semantic, "semantic_cls": semantic[:, 0]}
