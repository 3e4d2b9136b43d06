"""Transformer building blocks shared by the shape VAE and the shape DiT (pre-norm attention, MLP,
Fourier features)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class FourierEmbedder(nn.Module):
    """NeRF-style Fourier features of 3-D positions: [x, sin(2^k pi x), cos(2^k pi x)] for k < num_freqs."""

    def __init__(self, num_freqs: int = 8, include_input: bool = True):
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(num_freqs)) * math.pi, persistent=False)
        self.include_input = include_input
        self.out_dim = 3 * (2 * num_freqs + int(include_input))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (x[..., None] * self.freqs).flatten(-2)  # (..., 3 * F)
        parts = [x] if self.include_input else []
        return torch.cat(parts + [angles.sin(), angles.cos()], dim=-1)  # (..., out_dim)


class Attention(nn.Module):
    """Multi-head attention of queries x over context (self-attention when context is None)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, d = x.shape
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)  # (B, H, N, D/H)
        k, v = self.to_kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)  # (B, H, M, D/H)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, D/H)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(approximate="tanh"), nn.Linear(dim * mult, dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: (cross- or self-) attention then MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.context_norm = nn.LayerNorm(context_dim) if context_dim else None
        self.attn = Attention(dim, heads, context_dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.context_norm(context) if self.context_norm is not None else None
        x = x + self.attn(self.norm(x), ctx)
        return x + self.ff(self.norm_ff(x))


def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sinusoidal features [cos, sin] (DDPM / DiT convention)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([args.cos(), args.sin()], dim=-1)


def sincos_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """(height * width, dim) 2-D sine-cosine positions (MAE / DiT): half the channels encode the row,
    half the column; tokens are ordered row-major."""
    if dim % 4:
        raise ValueError(f"2-D sine-cosine positions need a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                indexing="ij")
    omega = 1.0 / 10_000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))

    def one_axis(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega[None]  # (HW, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (HW, dim/2)

    return torch.cat([one_axis(rows), one_axis(cols)], dim=1).float()  # (HW, dim)
