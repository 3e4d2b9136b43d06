"""Rigid/similarity transforms and normalization to the CONVENTIONS frame (longest side 1.9)."""

from __future__ import annotations

import numpy as np

from gen3d.types import Mesh

LONGEST_SIDE = 1.9  # CONVENTIONS: a normalized shape fits [-1, 1]^3 with margin


def apply_transform(mesh: Mesh, transform: np.ndarray) -> Mesh:
    """A copy of `mesh` with the 4x4 affine `transform` applied (normals by the inverse transpose)."""
    transform = np.asarray(transform, dtype=np.float64)
    out = mesh.copy()
    out.vertices = mesh.vertices @ transform[:3, :3].T + transform[:3, 3]  # (V, 3)
    if mesh.normals is not None:
        normals = mesh.normals.astype(np.float64) @ np.linalg.inv(transform[:3, :3])  # (V, 3) = n @ (A^-1)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        out.normals = normals.astype(np.float32)
    if np.linalg.det(transform[:3, :3]) < 0:  # a reflection flips triangle orientation
        out.faces = out.faces[:, ::-1].copy()
    return out


def normalization_transform(mesh: Mesh, mode: str = "box", size: float = LONGEST_SIDE) -> np.ndarray:
    """The 4x4 similarity taking `mesh` into the canonical domain.

    mode="box": bounding-box centre to the origin, longest side to `size` (default 1.9).
    mode="sphere": bounding-box centre to the origin, farthest vertex at distance `size`
    (pass size=1.0 for the unit sphere).
    """
    used = mesh.vertices[np.unique(mesh.faces)] if mesh.num_faces else mesh.vertices  # (V', 3)
    lo, hi = used.min(axis=0), used.max(axis=0)
    center = (lo + hi) / 2
    if mode == "box":
        extent = float((hi - lo).max())
    elif mode == "sphere":
        extent = 2.0 * float(np.linalg.norm(used - center, axis=1).max())
        size = 2.0 * size
    else:
        raise ValueError(f"unknown normalization mode {mode!r}; use 'box' or 'sphere'")
    scale = size / extent if extent > 0 else 1.0
    transform = np.eye(4)
    transform[:3, :3] *= scale
    transform[:3, 3] = -scale * center
    return transform


def normalize(mesh: Mesh, mode: str = "box", size: float | None = None) -> tuple[Mesh, np.ndarray]:
    """Normalize to the CONVENTIONS frame; returns (normalized mesh, 4x4 transform applied).

    Undo with `apply_transform(normalized, np.linalg.inv(transform))`.
    """
    if size is None:
        size = LONGEST_SIDE if mode == "box" else 1.0
    transform = normalization_transform(mesh, mode=mode, size=size)
    return apply_transform(mesh, transform), transform
