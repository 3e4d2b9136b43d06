"""Implicit fields of meshes (generalized winding number, occupancy, signed distance) and back.

Winding numbers (Jacobson et al. 2013; Barill et al. 2018, "fast winding numbers" via libigl)
decide inside/outside robustly for open and self-intersecting meshes, where ray parity fails.
"""

from __future__ import annotations

import igl
import numpy as np
from skimage import measure

from gen3d.types import Mesh

CHUNK = 262_144  # query points per libigl call: bounds memory, lets callers show progress


def _chunks(points: np.ndarray, fn, chunk: int = CHUNK) -> np.ndarray:
    points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) <= chunk:
        return fn(points)
    return np.concatenate([fn(points[i : i + chunk]) for i in range(0, len(points), chunk)])


def _mesh_arrays(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(mesh.vertices, np.float64), np.ascontiguousarray(mesh.faces, np.int64)


def winding_number(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """(N,) generalized winding number of the triangles at each point (1 inside a closed body)."""
    v, f = _mesh_arrays(mesh)
    return _chunks(points, lambda q: igl.fast_winding_number(v, f, q))


def occupancy(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """(N,) bool: inside by winding number >= 0.5 (CONVENTIONS), for open meshes too."""
    return winding_number(mesh, points) >= 0.5


def unsigned_distance(mesh: Mesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) exact point-to-triangle distance and (N,) index of the closest triangle (AABB tree)."""
    v, f = _mesh_arrays(mesh)

    def query(q: np.ndarray) -> np.ndarray:
        sq, idx, _ = igl.point_mesh_squared_distance(q, v, f)
        return np.stack([np.sqrt(np.maximum(sq, 0.0)), idx.astype(np.float64)], axis=1)

    out = _chunks(points, query)  # (N, 2)
    return out[:, 0], out[:, 1].astype(np.int64)


def signed_distance(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """(N,) distance to the surface, negative inside (inside decided by winding number >= 0.5)."""
    distance, _ = unsigned_distance(mesh, points)
    return np.where(occupancy(mesh, points), -distance, distance)


def grid_points(resolution: int, bounds: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """(R^3, 3) points of a regular grid with R samples per axis including both bounds, x slowest."""
    axis = np.linspace(bounds[0], bounds[1], resolution)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def marching_cubes(
    values: np.ndarray, level: float = 0.0, bounds: tuple[float, float] = (-1.0, 1.0), inside: str = "negative"
) -> Mesh:
    """Iso-surface of a (R, R, R) grid sampled as `grid_points(R, bounds)` (values[i, j, k] at x_i, y_j, z_k).

    `inside="negative"` for signed distances (negative inside), "positive" for occupancy
    probabilities or logits. Faces are oriented outward; vertices are in world coordinates.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or len(set(values.shape)) != 1:
        raise ValueError(f"expected a cubic (R, R, R) grid, got shape {values.shape}")
    if not values.min() < level < values.max():
        raise ValueError(f"level {level} is outside the value range [{values.min():.4g}, {values.max():.4g}]")
    resolution = values.shape[0]
    spacing = (bounds[1] - bounds[0]) / (resolution - 1)
    field = values if inside == "negative" else -values  # make inside negative
    level = level if inside == "negative" else -level
    verts, faces, _, _ = measure.marching_cubes(field, level=level, spacing=(spacing,) * 3)
    verts = verts + bounds[0]  # (V, 3) grid index space -> world
    # skimage winds faces so that normals point toward increasing values: outward here.
    return Mesh(vertices=verts, faces=faces)


def semi_continuous_occupancy(sdf: np.ndarray, band: float) -> np.ndarray:
    """Direct3D's semi-continuous occupancy target from signed distance (negative inside):
    o = clip(0.5 - sdf / (2 band), 0, 1) -- 1 inside and 0 outside beyond `band`, a linear ramp
    through 0.5 at the surface within it. Shared by training and its tests."""
    if not band > 0:
        raise ValueError("band must be positive")
    return np.clip(0.5 - np.asarray(sdf) / (2.0 * band), 0.0, 1.0)
