"""D3D-DiT (Direct3D, Wu et al. 2024): a diffusion transformer over the rolled-out triplane latent,
conditioned on pixel-level image tokens (DINOv2-style, joined to self-attention) and semantic
tokens (CLIP-style, through cross-attention; the class token added to the timestep embedding),
with PixArt-alpha's adaLN-single modulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gen3d.nn.layers import Attention, FeedForward, sincos_2d, timestep_embedding
from gen3d.utils.config import from_dict

MODEL_TYPE = "D3DDiT"


@dataclass
class DiTConfig:
    """Hyper-parameters of the D3D-DiT (presets below; configs override single fields)."""

    latent_channels: int = 16  # d_z of the VAE
    plane_res: int = 32  # r of the VAE: the latent is (d_z, r, 3r)
    patch: int = 2
    width: int = 1152
    heads: int = 16
    depth: int = 28
    pixel_dim: int = 1024  # DINOv2-L token width
    semantic_dim: int = 1024  # CLIP ViT-L/14 hidden width
    prediction: str = "v"  # what the network predicts: "eps", "v" or "x0"

    @property
    def grid(self) -> tuple[int, int]:
        return self.plane_res // self.patch, 3 * self.plane_res // self.patch


PRESETS = {
    "base": dict(),  # DiT-XL/2-like, the paper's setting
    "tiny": dict(latent_channels=8, plane_res=16, width=192, heads=4, depth=6, pixel_dim=128, semantic_dim=128),
}


def preset_config(name: str, **overrides) -> DiTConfig:
    """The named preset with single fields overridden (unknown names and keys raise ValueError)."""
    if name not in PRESETS:
        raise ValueError(f"unknown DiT preset {name!r}; choose from {', '.join(PRESETS)}")
    return from_dict(DiTConfig, {**PRESETS[name], **overrides}, where="model")


class DiTBlock(nn.Module):
    """Self-attention over [latent; pixel] tokens (latent kept), cross-attention to semantic tokens,
    MLP; shift/scale/gate from the shared timestep projection plus this block's table."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.width
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads)
        self.norm_cross = nn.LayerNorm(d)
        self.cross = Attention(d, cfg.heads)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(d)
        self.scale_shift_table = nn.Parameter(torch.randn(6, d) / d**0.5)

    def forward(self, x, t6, pixel, semantic):
        """x (B, N, D), t6 (B, 6, D), pixel (B, P, D), semantic (B, S, D) -> (B, N, D)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.scale_shift_table[None] + t6).unbind(1)  # (B, D) each
        h = self.norm1(x) * (1 + scale1[:, None]) + shift1[:, None]
        x = x + gate1[:, None] * self.attn(h, torch.cat([h, pixel], dim=1))  # (B, N, D): queries are latent only
        x = x + self.cross(self.norm_cross(x), semantic)
        h = self.norm2(x) * (1 + scale2[:, None]) + shift2[:, None]
        return x + gate2[:, None] * self.ff(h)


class D3DDiT(nn.Module):
    """net(x, t, cond) -> prediction, x (B, d_z, r, 3r), t (B,) timesteps in [0, 1000), cond a dict with
    "pixel" (B, P, pixel_dim), "semantic" (B, S, semantic_dim) and "semantic_cls" (B, semantic_dim)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.config = cfg
        d, p = cfg.width, cfg.patch
        self.patch_embed = nn.Conv2d(cfg.latent_channels, d, p, stride=p)
        self.register_buffer("pos", sincos_2d(d, *cfg.grid), persistent=False)  # (N, D)
        self.time_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.cls_proj = nn.Linear(cfg.semantic_dim, d)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.pixel_proj = nn.Sequential(nn.Linear(cfg.pixel_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.semantic_proj = nn.Linear(cfg.semantic_dim, d)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_table = nn.Parameter(torch.randn(2, d) / d**0.5)
        self.out = nn.Linear(d, p * p * cfg.latent_channels)
        nn.init.zeros_(self.out.weight)  # DiT: the prediction starts at zero
        nn.init.zeros_(self.out.bias)
        nn.init.zeros_(self.t_block[1].weight)  # modulation starts at the per-block tables
        nn.init.zeros_(self.t_block[1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        cfg, (gh, gw) = self.config, self.config.grid
        b = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, N, D), row-major over (gh, gw)
        t = t.expand(b) if t.dim() == 0 else t
        emb = self.time_mlp(timestep_embedding(t)) + self.cls_proj(cond["semantic_cls"])  # (B, D)
        t6 = self.t_block(emb).view(b, 6, -1)  # (B, 6, D)
        pixel = self.pixel_proj(cond["pixel"])  # (B, P, D)
        semantic = self.semantic_proj(cond["semantic"])  # (B, S, D)
        for block in self.blocks:
            tokens = block(tokens, t6, pixel, semantic)
        shift, scale = (self.final_table[None] + emb[:, None]).unbind(1)  # (B, D) each
        out = self.out(self.final_norm(tokens) * (1 + scale[:, None]) + shift[:, None])  # (B, N, p*p*d_z)
        p, c = cfg.patch, cfg.latent_channels
        out = out.view(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, p, gw, p)
        return out.reshape(b, c, gh * p, gw * p)


def null_condition(cond: dict) -> dict:
    """The unconditional branch of classifier-free guidance: both conditions zeroed (as Direct3D)."""
    return {k: torch.zeros_like(v) for k, v in cond.items()}


class ImageConditionedDiT(nn.Module):
    """The image -> latent denoising network: an image encoder producing the conditions and the DiT.

    forward(x, t, images, keep) encodes the images, zeroes the conditions of samples whose keep is
    False (classifier-free guidance training) and predicts; `denoise(x, t, cond)` takes conditions
    already encoded (sampling encodes once)."""

    def __init__(self, encoder: nn.Module, dit: D3DDiT):
        super().__init__()
        self.encoder, self.dit = encoder, dit

    def forward(self, x: torch.Tensor, t: torch.Tensor, images: torch.Tensor, keep: torch.Tensor | None = None):
        cond = self.encoder(images)
        if keep is not None:  # (B,) bool
            cond = {k: v * keep.view(-1, *([1] * (v.dim() - 1))).to(v.dtype) for k, v in cond.items()}
        return self.dit(x, t, cond)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        return self.dit(x, t, cond)
