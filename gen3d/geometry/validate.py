"""Geometry validation with CONVENTIONS reason codes: reject unusable meshes, never traceback."""

from __future__ import annotations

import numpy as np

from gen3d.errors import InputError
from gen3d.geometry.topology import collapsed_faces
from gen3d.types import Mesh


def validate_geometry(mesh: Mesh, *, name: str = "mesh", max_faces: int | None = None) -> None:
    """Raise InputError(reason) if `mesh` cannot be used; return None when it can."""
    if mesh.num_vertices == 0 and mesh.num_faces == 0:
        raise InputError("empty", f"{name}: no vertices and no faces")
    if mesh.num_faces == 0:
        raise InputError("no_faces", f"{name}: {mesh.num_vertices} vertices but no faces")
    if max_faces is not None and mesh.num_faces > max_faces:
        raise InputError("too_many_faces", f"{name}: {mesh.num_faces} faces exceeds the limit of {max_faces}")
    if mesh.faces.min() < 0 or mesh.faces.max() >= mesh.num_vertices:
        raise InputError(
            "index_out_of_range", f"{name}: face indices outside [0, {mesh.num_vertices - 1}]"
        )
    used = mesh.vertices[np.unique(mesh.faces)]
    if not np.isfinite(used).all():
        bad = int((~np.isfinite(used).all(axis=1)).sum())
        raise InputError("nonfinite_vertices", f"{name}: {bad} vertices have NaN or infinite coordinates")
    if not (degenerate_faces(mesh) == False).any():  # noqa: E712 (elementwise)
        raise InputError("degenerate_only", f"{name}: all {mesh.num_faces} faces have zero area")


def degenerate_faces(mesh: Mesh, rel_area: float = 1e-12) -> np.ndarray:
    """(F,) bool: faces with a repeated corner or area below rel_area x bbox-diagonal^2."""
    extent = np.ptp(mesh.vertices[np.unique(mesh.faces)], axis=0) if mesh.num_faces else np.zeros(3)
    diagonal2 = float(np.dot(extent, extent))
    return collapsed_faces(mesh.faces) | (mesh.face_areas() <= rel_area * max(diagonal2, 1e-300))
