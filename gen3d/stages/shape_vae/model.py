"""D3D-VAE (Direct3D, Wu et al. 2024): point cloud -> explicit triplane latent -> occupancy logits.

Encoder: Fourier-embedded surface points + normals, one cross-attention from 3 r^2 learnable
tokens into the points, a stack of self-attention blocks, then the tokens laid out as three
r x r planes rolled out side by side into one (d_z, r, 3r) image (a diagonal Gaussian).
Decoder: a convolutional upsampler to a high-resolution rolled-out triplane, bilinear features
from each plane concatenated, and a small MLP giving an occupancy logit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gen3d.nn.layers import FourierEmbedder, TransformerBlock
from gen3d.utils.checkpoint import load_into, load_pretrained
from gen3d.utils.config import from_dict

MODEL_TYPE = "D3DVAE"


@dataclass
class VAEConfig:
    """Hyper-parameters of the D3D-VAE (presets below; configs override single fields)."""

    width: int = 768  # encoder token width
    heads: int = 12
    encoder_layers: int = 8  # self-attention blocks after the cross-attention
    num_freqs: int = 8  # Fourier frequencies of the point positions
    plane_res: int = 32  # r: latent triplane resolution per plane
    latent_channels: int = 16  # d_z
    decoder_channels: tuple = (512, 512, 256, 128)  # conv upsampler widths; len - 1 upsamplings by 2
    decoder_mid_attention: bool = True  # a self-attention block at the latent resolution
    triplane_channels: int = 32  # channels per high-resolution plane
    mlp_hidden: int = 64
    mlp_layers: int = 5  # linear layers of the occupancy MLP (the last one outputs the logit)
    surface_points: int = 81_920  # points the encoder expects at inference

    def __post_init__(self):
        self.decoder_channels = tuple(self.decoder_channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.plane_res, 3 * self.plane_res)

    @property
    def triplane_res(self) -> int:
        return self.plane_res * 2 ** (len(self.decoder_channels) - 1)


PRESETS = {
    # the paper's sizes (GPU): r = 32, d_z = 16, width 768, 8 blocks, 3 x 32 channels at 256^2
    "base": dict(),
    # trains on 2 CPU cores in a few hours: r = 16 (latent 8 x 16 x 48), 64^2 output planes
    "tiny": dict(width=128, heads=4, encoder_layers=2, num_freqs=6, plane_res=16, latent_channels=8,
                 decoder_channels=(128, 64, 32), decoder_mid_attention=False, triplane_channels=16,
                 surface_points=2048),
}


def preset_config(name: str, **overrides) -> VAEConfig:
    """The named preset with single fields overridden (unknown names and keys raise ValueError)."""
    if name not in PRESETS:
        raise ValueError(f"unknown VAE preset {name!r}; choose from {', '.join(PRESETS)}")
    return from_dict(VAEConfig, {**PRESETS[name], **overrides}, where="model")


# ------------------------------------------------------------------ triplane layout


def roll_out(planes: torch.Tensor) -> torch.Tensor:
    """(B, 3, C, H, W) planes -> (B, C, H, 3W), the three planes side by side along the width."""
    return torch.cat(planes.unbind(1), dim=-1)


def unroll(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, 3W) rolled-out image -> (B, 3, C, H, W) planes."""
    return torch.stack(image.chunk(3, dim=-1), dim=1)


QUERY_ROWS = 32_768  # rows per occupancy-MLP pass on the CPU (tools/bench/generate_speed.py)
PLANE_AXES = ((0, 1), (0, 2), (1, 2))  # plane k is indexed by these coordinates: xy, xz, yz


def sample_triplane(planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear features of points in [-1, 1]^3: planes (B, 3, C, R, R), points (B, N, 3) -> (B, N, 3C).

    Plane k's width axis is coordinate PLANE_AXES[k][0] and its height axis PLANE_AXES[k][1];
    points outside the cube get border features."""
    b, _, c, res, _ = planes.shape
    feats = []
    for k, (u, v) in enumerate(PLANE_AXES):
        grid = points[..., [u, v]].unsqueeze(1)  # (B, 1, N, 2)
        f = F.grid_sample(planes[:, k], grid, mode="bilinear", padding_mode="border", align_corners=False)
        feats.append(f[:, :, 0].transpose(1, 2))  # (B, N, C)
    return torch.cat(feats, dim=-1)  # (B, N, 3C)


# ------------------------------------------------------------------ modules


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) over the latent; KL to N(0, I) averaged over dimensions."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)  # (B, d_z, r, 3r) each
        self.logvar = logvar.clamp(-30.0, 20.0)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """The reparameterised draw mean + std * noise, noise (B, d_z, r, 3r) standard normal."""
        return self.mean + (0.5 * self.logvar).exp() * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """(B,) KL(q || N(0, I)) averaged over latent dimensions."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).flatten(1).mean(1)


class PointEncoder(nn.Module):
    """Perceiver-style encoder: learnable plane tokens cross-attend into the points, then self-attend."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = FourierEmbedder(cfg.num_freqs)
        self.point_proj = nn.Linear(self.embed.out_dim + 3, cfg.width)
        self.tokens = nn.Parameter(torch.randn(3 * cfg.plane_res**2, cfg.width) * 0.02)
        self.cross = TransformerBlock(cfg.width, cfg.heads, context_dim=cfg.width)
        self.blocks = nn.ModuleList(TransformerBlock(cfg.width, cfg.heads) for _ in range(cfg.encoder_layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.to_moments = nn.Conv2d(cfg.width, 2 * cfg.latent_channels, 1)

    def forward(self, points: torch.Tensor, normals: torch.Tensor) -> DiagonalGaussian:
        r = self.cfg.plane_res
        context = self.point_proj(torch.cat([self.embed(points), normals], dim=-1))  # (B, N, W)
        x = self.tokens.expand(points.shape[0], -1, -1)  # (B, 3 r^2, W)
        x = self.cross(x, context)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        planes = x.view(x.shape[0], 3, r, r, -1).permute(0, 1, 4, 2, 3)  # (B, 3, W, r, r)
        return DiagonalGaussian(self.to_moments(roll_out(planes)))  # moments (B, 2 d_z, r, 3r)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(_groups(cin), cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  nn.GroupNorm(_groups(cout), cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class ImageSelfAttention(nn.Module):
    """Single-head self-attention over the pixels of a feature map (the decoder's mid block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=-1)  # (B, HW, C) each
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).view(b, c, h, w)
        return x + self.out(y)


def _groups(channels: int) -> int:
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)


class TriplaneDecoder(nn.Module):
    """Latent (B, d_z, r, 3r) -> high-resolution planes (B, 3, C, R, R) by convolutional upsampling."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch = cfg.decoder_channels
        self.post_latent = nn.Conv2d(cfg.latent_channels, ch[0], 1)
        mid = [ResBlock(ch[0], ch[0])]
        if cfg.decoder_mid_attention:
            mid += [ImageSelfAttention(ch[0]), ResBlock(ch[0], ch[0])]
        self.mid = nn.Sequential(*mid)
        ups = []
        for cin, cout in zip(ch[:-1], ch[1:]):
            ups += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                    ResBlock(cout, cout)]
        self.up = nn.Sequential(*ups)
        self.head = nn.Sequential(nn.GroupNorm(_groups(ch[-1]), ch[-1]), nn.SiLU(),
                                  nn.Conv2d(ch[-1], cfg.triplane_channels, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.up(self.mid(self.post_latent(z)))  # (B, C_last, R, 3R)
        return unroll(self.head(x))  # (B, 3, C, R, R)


class OccupancyMLP(nn.Sequential):
    """Concatenated triplane features (3C) -> occupancy logit, `layers` linear layers with ReLU."""

    def __init__(self, cfg: VAEConfig):
        dims = [3 * cfg.triplane_channels] + [cfg.mlp_hidden] * (cfg.mlp_layers - 1)
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        super().__init__(*layers, nn.Linear(dims[-1], 1))


class D3DVAE(nn.Module):
    """The whole autoencoder; `encode` -> posterior, `decode` -> planes, `query` -> logits."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        self.encoder = PointEncoder(cfg)
        self.decoder = TriplaneDecoder(cfg)
        self.mlp = OccupancyMLP(cfg)

    def encode(self, points: torch.Tensor, normals: torch.Tensor) -> DiagonalGaussian:
        return self.encoder(points, normals)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d_z, r, 3r) latent -> (B, 3, C, R, R) planes."""
        return self.decoder(z)

    def query(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) points -> (B, N) occupancy logits (positive inside).

        On the CPU the points go through in blocks of about QUERY_ROWS rows (B x points), so that the
        MLP's activations stay in cache: the same values, 2-2.5x faster on large queries (docs)."""
        step = max(1, QUERY_ROWS // len(points)) if points.device.type == "cpu" else points.shape[1]
        if points.shape[1] <= step:
            return self.mlp(sample_triplane(planes, points))[..., 0]
        return torch.cat([self.mlp(sample_triplane(planes, points[:, lo: lo + step]))[..., 0]
                          for lo in range(0, points.shape[1], step)], dim=1)  # (B, N)

    def forward(self, points, normals, queries, noise: torch.Tensor | None = None):
        """Training forward: (logits (B, M), KL (B,)) with latent mean + std * noise (the mode without noise)."""
        posterior = self.encode(points, normals)
        z = posterior.mode() if noise is None else posterior.sample(noise)
        return self.query(self.decode(z), queries), posterior.kl()

    def config_dict(self) -> dict:
        return asdict(self.config)


# ------------------------------------------------------------------ model folders

BUNDLED_VAE = Path(__file__).resolve().parents[2] / "weights" / "tiny" / "vae"


def load_vae(folder: str | Path | None = None, device: str | torch.device = "cpu") -> D3DVAE:
    """A D3D-VAE from a model folder (default: the bundled tiny VAE), in eval mode, float32."""
    folder = Path(folder) if folder is not None else BUNDLED_VAE
    state, meta = load_pretrained(folder, MODEL_TYPE)
    model = D3DVAE(from_dict(VAEConfig, meta["config"], where=f"{folder}/config.json"))
    load_into(model, state, str(folder))
    return model.to(device).eval()
