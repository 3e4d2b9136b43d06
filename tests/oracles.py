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


def raycast_reference(vertices_world: np.ndarray, faces: np.ndarray, c2w: np.ndarray, fx: float, fy: float,
                      cx: float, cy: float, width: int, height: int, near: float, far: float,
                      orthographic: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Naive per-pixel ray casting (Moller-Trumbore, float64) in camera space: the rasterizer's oracle.

    Returns per pixel the nearest triangle id (-1 none), its barycentrics (3D, hence perspective
    correct) and a flag for ambiguous pixels (centre within 1e-7 of an edge, or two hits within
    1e-9 in depth), where either answer is right.
    """
    w2c = np.linalg.inv(c2w)
    cam = vertices_world @ w2c[:3, :3].T + w2c[:3, 3]  # (V, 3) camera space, looking along -Z
    tri_ids = -np.ones((height, width), dtype=np.int64)
    barys = np.zeros((height, width, 3))
    ambiguous = np.zeros((height, width), dtype=bool)
    for row in range(height):
        for col in range(width):
            u, v = col + 0.5, row + 0.5  # pixel centre, row 0 at the top
            if orthographic:
                origin = np.array([(u - cx) / fx, -(v - cy) / fy, 0.0])
                direction = np.array([0.0, 0.0, -1.0])
            else:
                origin = np.zeros(3)
                direction = np.array([(u - cx) / fx, -(v - cy) / fy, -1.0])
            hits = []
            near_miss = False
            for f, (a, b, c) in enumerate(faces):
                p0, p1, p2 = cam[a], cam[b], cam[c]
                e1, e2 = p1 - p0, p2 - p0
                h = np.cross(direction, e2)
                det = np.dot(e1, h)
                if abs(det) < 1e-15:
                    continue
                s = origin - p0
                bu = np.dot(s, h) / det
                q = np.cross(s, e1)
                bv = np.dot(direction, q) / det
                t = np.dot(e2, q) / det
                bw = 1 - bu - bv
                depth = -(origin + t * direction)[2]  # distance along the viewing axis
                if t > 0 and near <= depth <= far and -1e-7 < min(bu, bv, bw) < 0:
                    near_miss = True
                if min(bu, bv, bw) < 0 or t <= 0 or not near <= depth <= far:
                    continue
                hits.append((depth, f, np.array([bw, bu, bv])))
            ambiguous[row, col] = near_miss
            if not hits:
                continue
            hits.sort(key=lambda h: (h[0], h[1]))
            depth, f, bary = hits[0]
            tri_ids[row, col] = f
            barys[row, col] = bary
            ambiguous[row, col] |= bary.min() < 1e-7 or (len(hits) > 1 and hits[1][0] - depth < 1e-9)
    return tri_ids, barys, ambiguous
