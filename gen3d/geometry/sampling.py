"""Area-weighted surface sampling with normals, seeded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen3d.types import Mesh


@dataclass(frozen=True)
class SurfaceSamples:
    """Points on a surface with the unit normal of the triangle each lies on."""

    points: np.ndarray  # (N, 3) float64
    normals: np.ndarray  # (N, 3) float64
    face_index: np.ndarray  # (N,) int64
    barycentric: np.ndarray  # (N, 3) float64


def sample_surface(mesh: Mesh, count: int, seed: int | np.random.Generator = 0) -> SurfaceSamples:
    """Uniform (area-weighted) samples of the surface: triangle by area, then uniform barycentrics."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    areas = mesh.face_areas()  # (F,)
    total = areas.sum()
    if not total > 0:
        raise ValueError("cannot sample a surface of zero area")
    face_index = rng.choice(len(areas), size=count, p=areas / total)  # (N,)
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1  # fold the unit square onto the triangle
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    barycentric = np.stack([1 - u - v, u, v], axis=1)  # (N, 3)
    corners = mesh.vertices[mesh.faces[face_index]]  # (N, 3, 3)
    points = np.einsum("nk,nkd->nd", barycentric, corners)  # (N, 3)
    normals = mesh.face_normals()[face_index]  # (N, 3)
    return SurfaceSamples(points=points, normals=normals, face_index=face_index, barycentric=barycentric)
