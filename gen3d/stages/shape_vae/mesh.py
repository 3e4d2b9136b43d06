"""Meshes in and out of the D3D-VAE: encode a mesh's surface samples, decode a latent to a surface."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gen3d.geometry.sampling import sample_surface
from gen3d.stages.shape_vae.extract import extract_dense, extract_hierarchical
from gen3d.stages.shape_vae.model import D3DVAE
from gen3d.types import Mesh

DEFAULT_RESOLUTION = 256
COARSE = 64  # hierarchical extraction starts on a 65^3 grid (one node per tiny-VAE plane texel) ...
LOGIT_BAND = 1.0  # ... and also refines cells whose logits come this close to the level (thin parts).
# Measured on the bundled VAE (tools/bench/extraction.py): a 33^3 start missed small parts of a chair
# unless the band was 4 logits wide, which cost more queries than this setting.


def encode_mesh(vae: D3DVAE, mesh: Mesh, *, seed: int = 0, points: int | None = None) -> torch.Tensor:
    """(1, d_z, r, 3r) posterior mode of a normalized mesh's seeded surface samples."""
    samples = sample_surface(mesh, points or vae.config.surface_points, seed)
    device = next(vae.parameters()).device
    p = torch.from_numpy(samples.points.astype(np.float32))[None].to(device)  # (1, N, 3)
    n = torch.from_numpy(samples.normals.astype(np.float32))[None].to(device)  # (1, N, 3)
    with torch.no_grad():
        return vae.encode(p, n).mode()


def latent_to_mesh(vae: D3DVAE, z: torch.Tensor, *, resolution: int = DEFAULT_RESOLUTION, level: float = 0.0,
                   method: str = "hierarchical", chunk: int = 262_144):
    """Decode latents (N, d_z, r, 3r) and extract the {logit > level} surface: (Mesh or None, stats).

    With N > 1 the field is the ensemble's: the logit of the mean occupancy probability of the N
    decoded fields (`ensemble_logits`); with N = 1 it is the decoded logits themselves."""
    with torch.no_grad():
        planes = vae.decode(z)  # (N, 3, C, R, R)

    def field(points: torch.Tensor) -> torch.Tensor:  # (M, 3) -> (M,)
        return ensemble_logits(vae.query(planes, points[None].expand(len(planes), -1, -1)))

    if method == "dense":
        return extract_dense(field, resolution, level=level, device=z.device, chunk=chunk)
    if method != "hierarchical":
        raise ValueError(f"unknown extraction method {method!r}; choose dense or hierarchical")
    coarse = min(COARSE, resolution)
    return extract_hierarchical(field, resolution, level=level, coarse=coarse, band=LOGIT_BAND, device=z.device,
                                chunk=chunk)


def ensemble_logits(logits: torch.Tensor) -> torch.Tensor:
    """(N, M) occupancy logits of N fields -> (M,) logit of their mean probability (N = 1: unchanged).

    The mean probability is the Monte-Carlo estimate of the posterior occupancy given the image,
    whose 0.5 level set minimizes the expected misclassified volume."""
    if len(logits) == 1:
        return logits[0]
    log_mean_inside = torch.logsumexp(F.logsigmoid(logits), 0)  # (M,) log(sum p), the 1/N cancels
    log_mean_outside = torch.logsumexp(F.logsigmoid(-logits), 0)  # (M,) log(sum (1 - p))
    return log_mean_inside - log_mean_outside
