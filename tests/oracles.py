"""Independent references for tests and benchmarks, written plainly (not gen3d code paths)."""

from __future__ import annotations

import numpy as np
import trimesh

from gen3d.types import Mesh


def ray_directions(count: int, seed: int = 12345) -> np.ndarray:
    """(count, 3) random unit directions: no ray runs along a mesh edge or axis-aligned face."""
    d = np.random.default_rng(seed).normal(size=(count, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def ray_parity_inside(mesh: Mesh, points: np.ndarray, num_directions: int = 7) -> np.ndarray:
    """(N,) bool: majority vote over directions of "the ray crosses the surface an odd number of times".

    Ray casting is independent of winding numbers; for an open mesh (the bunny's base) single
    rays leak through holes, the majority over several directions does not (mostly).
    """
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    votes = np.zeros(len(points), dtype=np.int64)
    for direction in ray_directions(num_directions):
        dirs = np.broadcast_to(direction, points.shape).copy()
        _, ray_index = tm.ray.intersects_id(points, dirs, multiple_hits=True, return_locations=False)[:2]
        hits = np.bincount(ray_index, minlength=len(points))
        votes += hits % 2
    return votes * 2 > num_directions


def near_surface_points(mesh: Mesh, count: int, band: float, seed: int = 0) -> np.ndarray:
    """(count, 3) points within `band` of the surface: surface samples pushed along random directions."""
    rng = np.random.default_rng(seed)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    base, _ = trimesh.sample.sample_surface(tm, count, seed=int(rng.integers(1 << 31)))
    offsets = rng.normal(size=(count, 3))
    offsets *= (rng.uniform(0, band, size=count) / np.linalg.norm(offsets, axis=1))[:, None]
    return base + offsets
