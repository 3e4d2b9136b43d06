"""Meshes in and out of the D3D-VAE: encode a mesh's surface samples, decode a latent to a surface."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from gen3d.geometry.fields import grid_points
from gen3d.geometry.sampling import sample_surface
from gen3d.stages.shape_vae.extract import extract_dense, extract_hierarchical, lattice_surface
from gen3d.stages.shape_vae.model import D3DVAE
from gen3d.types import Mesh

DEFAULT_RESOLUTION = 256
COARSE = 64  # hierarchical extraction starts on a 65^3 grid (one node per tiny-VAE plane texel) ...
LOGIT_BAND = 1.0  # ... and also refines cells whose logits come this close to the level (thin parts).
# Measured on the bundled VAE (tools/bench/extraction.py): a 33^3 start missed small parts of a chair
# unless the band was 4 logits wide, which cost more queries than this setting.
CARVED = -30.0  # the logit given to carved points (`keep`): far below any extraction level
MEMO_RESOLUTION = 256  # lattice_field keeps node values up to this resolution (257^3 float32: 68 MB)


def encode_mesh(vae: D3DVAE, mesh: Mesh, *, seed: int = 0, points: int | None = None) -> torch.Tensor:
    """(1, d_z, r, 3r) posterior mode of a normalized mesh's seeded surface samples."""
    samples = sample_surface(mesh, points or vae.config.surface_points, seed)
    device = next(vae.parameters()).device
    p = torch.from_numpy(samples.points.astype(np.float32))[None].to(device)  # (1, N, 3)
    n = torch.from_numpy(samples.normals.astype(np.float32))[None].to(device)  # (1, N, 3)
    with torch.no_grad():
        return vae.encode(p, n).mode()


def latent_to_mesh(vae: D3DVAE, z: torch.Tensor, *, resolution: int = DEFAULT_RESOLUTION, level: float = 0.0,
                   method: str = "hierarchical", chunk: int = 262_144, rotations: np.ndarray | None = None):
    """Decode latents (N, d_z, r, 3r) and extract the {logit > level} surface: (Mesh or None, stats).

    With N > 1 the field is the ensemble's: the logit of the mean occupancy probability of the N
    decoded fields (`ensemble_logits`); with N = 1 it is the decoded logits themselves. `rotations`
    ((N, 3, 3), optional) turns each decoded shape by its matrix before they are combined."""
    return DecodedLatents(vae, z, chunk=chunk).to_mesh(resolution, level=level, method=method, rotations=rotations)


class DecodedLatents:
    """N decoded latents: their triplanes, and each one's logits on the coarse extraction lattice,
    computed once and shared by the per-sample meshes and the ensemble's extraction."""

    def __init__(self, vae: D3DVAE, z: torch.Tensor, *, chunk: int = 262_144):
        self.vae, self.z, self.chunk = vae, z, chunk
        with torch.no_grad():
            self.planes = vae.decode(z)  # (N, 3, C, R, R)
        self._coarse: np.ndarray | None = None
        self._memo: dict = {}  # (resolution, rotations) -> ((R + 1)^3,) lattice values (`lattice_field`)
        self._coarse_seconds = 0.0

    def field(self, rotations: np.ndarray | None = None):
        """(M, 3) points -> (M,) ensemble logits of the N shapes, shape k turned by rotations[k]."""
        turn = None if rotations is None else torch.as_tensor(np.asarray(rotations), dtype=self.z.dtype,
                                                              device=self.z.device)

        def field(points: torch.Tensor) -> torch.Tensor:  # (M, 3) -> (M,)
            if turn is None:
                per_shape = points[None].expand(len(self.planes), -1, -1)  # (N, M, 3)
            else:  # shape k turned by R_k is occupied at p where the original is occupied at R_k^T p
                per_shape = torch.einsum("mi,nij->nmj", points.to(turn.dtype), turn)  # (N, M, 3) rows p^T R_k
            return ensemble_logits(self.vae.query(self.planes, per_shape))

        return field

    def lattice_field(self, resolution: int, rotations: np.ndarray | None = None):
        """`field(rotations)` on the nodes of the [-1, 1]^3 lattice with `resolution` cells per side,
        each node's value computed once per DecodedLatents (a second extraction at the same resolution
        and rotations, e.g. of a carved field, queries only the nodes the first did not); up to 256."""
        field = self.field(rotations)
        if resolution > MEMO_RESOLUTION:
            return field
        key = (resolution, None if rotations is None else np.asarray(rotations, np.float64).tobytes())
        if key not in self._memo:
            self._memo[key] = torch.full(((resolution + 1) ** 3,), float("nan"), device=self.z.device)
        values = self._memo[key]  # ((R + 1)^3,) NaN where not computed yet

        def memoized(points: torch.Tensor) -> torch.Tensor:  # (M, 3) lattice nodes -> (M,)
            index = torch.round((points + 1.0) * (resolution / 2)).long()  # (M, 3)
            flat = (index[:, 0] * (resolution + 1) + index[:, 1]) * (resolution + 1) + index[:, 2]  # (M,)
            out = values[flat]
            todo = torch.isnan(out)
            if todo.any():
                out[todo] = field(points[todo]).to(out.dtype)
                values[flat[todo]] = out[todo]
            return out

        return memoized

    def coarse_logits(self) -> np.ndarray:
        """(N, COARSE + 1, COARSE + 1, COARSE + 1) logits of each shape on the coarse lattice (x, y, z)."""
        if self._coarse is None:
            start = time.perf_counter()
            axis = torch.arange(COARSE + 1, device=self.z.device).float() * (2.0 / COARSE) - 1.0  # (L,)
            nodes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)  # (L^3, 3)
            with torch.no_grad():  # one call: the query bounds its own working memory on the CPU
                logits = self.vae.query(self.planes, nodes[None].expand(len(self.planes), -1, -1))  # (N, L^3)
            self._coarse = logits.float().cpu().numpy().reshape(len(self.planes), *(COARSE + 1,) * 3)
            self._coarse_seconds = time.perf_counter() - start
        return self._coarse

    def coarse_ensemble(self, rotations: np.ndarray | None = None) -> np.ndarray:
        """(L, L, L) ensemble logits on the coarse lattice, shape k turned by rotations[k] first."""
        lattices = self.coarse_logits()  # (N, L, L, L)
        if rotations is not None:
            lattices = np.stack([turn_lattice(v, r) for v, r in zip(lattices, np.asarray(rotations))])
        combined = ensemble_logits(torch.from_numpy(lattices).reshape(len(lattices), -1))  # (L^3,)
        return combined.reshape(lattices.shape[1:]).numpy()

    def sample_meshes(self) -> list[Mesh | None]:
        """Each shape's surface on the coarse lattice alone (one per latent; None where it is empty)."""
        return [lattice_surface(values, 0.0, COARSE, mask=None) for values in self.coarse_logits()]

    def to_mesh(self, resolution: int = DEFAULT_RESOLUTION, *, level: float = 0.0, method: str = "hierarchical",
                rotations: np.ndarray | None = None, keep=None):
        """The ensemble's {logit > level} surface (Mesh or None, stats); see `latent_to_mesh`. `keep`:
        a test (M, 3) float64 points -> (M,) bool; where it is False the field is CARVED."""
        field = self.lattice_field(resolution, rotations)
        if keep is not None:
            field = carved(field, keep)
        if method == "dense":
            return extract_dense(field, resolution, level=level, device=self.z.device, chunk=self.chunk)
        if method != "hierarchical":
            raise ValueError(f"unknown extraction method {method!r}; choose dense or hierarchical")
        coarse = min(COARSE, resolution)
        known = None
        if coarse == COARSE:  # the coarse level from the per-shape lattices, turned, then combined
            known = self.coarse_ensemble(rotations)
            if keep is not None:
                known = np.where(keep(grid_points(COARSE + 1)).reshape(known.shape), known, CARVED)
        mesh, stats = extract_hierarchical(field, resolution, level=level, coarse=coarse, band=LOGIT_BAND,
                                           device=self.z.device, chunk=self.chunk, coarse_values=known)
        if known is not None:  # count the coarse lattice's queries and time, as if extracted in one go
            stats = replace(stats, queries=stats.queries + known.size,
                            query_seconds=stats.query_seconds + self._coarse_seconds)
        return mesh, stats


def carved(field, keep):
    """`field` ((M, 3) -> (M,) logits) with CARVED where `keep` ((M, 3) float64 array -> (M,) bool) is False."""

    def carved_field(points: torch.Tensor) -> torch.Tensor:
        logits = field(points)  # (M,)
        kept = torch.from_numpy(keep(points.detach().cpu().double().numpy())).to(logits.device)  # (M,)
        return torch.where(kept, logits, torch.full_like(logits, CARVED))

    return carved_field


def turn_lattice(values: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(L, L, L) values of a shape on the symmetric lattice over [-1, 1]^3 -> those of the shape turned
    by `rotation`, whose lattice maps onto itself (quarter turns about an axis): node p takes the value at
    R^T p. Other rotations raise ValueError."""
    n = values.shape[0] - 1
    axis = np.linspace(-1.0, 1.0, n + 1)
    nodes = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)  # (L^3, 3)
    source = (nodes @ np.asarray(rotation) + 1.0) * n / 2  # (L^3, 3) lattice coordinates of R^T p
    index = np.rint(source).astype(np.int64)
    if np.abs(source - index).max() > 1e-6 or index.min() < 0 or index.max() > n:
        raise ValueError("the rotation does not map the extraction lattice onto itself (not a quarter turn)")
    return values[index[:, 0], index[:, 1], index[:, 2]].reshape(values.shape)


def ensemble_logits(logits: torch.Tensor) -> torch.Tensor:
    """(N, M) occupancy logits of N fields -> (M,) logit of their mean probability (N = 1: unchanged).

    The mean probability is the Monte-Carlo estimate of the posterior occupancy given the image,
    whose 0.5 level set minimizes the expected misclassified volume."""
    if len(logits) == 1:
        return logits[0]
    log_mean_inside = torch.logsumexp(F.logsigmoid(logits), 0)  # (M,) log(sum p), the 1/N cancels
    log_mean_outside = torch.logsumexp(F.logsigmoid(-logits), 0)  # (M,) log(sum (1 - p))
    return log_mean_inside - log_mean_outside
