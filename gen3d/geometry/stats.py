"""Mesh statistics reported by `gen3d info` (topology per CONVENTIONS: welded by position)."""

from __future__ import annotations

import numpy as np

from gen3d.geometry.topology import topology_stats
from gen3d.geometry.validate import degenerate_faces
from gen3d.types import Mesh


def signed_volume(mesh: Mesh) -> float:
    """Volume enclosed by a closed mesh by the divergence theorem; positive when faces point outward."""
    tri = mesh.vertices[mesh.faces]  # (F, 3, 3)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def mesh_info(mesh: Mesh) -> dict:
    """A JSON-ready summary: counts, topology, bounds, attributes, area and (closed) volume."""
    topo = topology_stats(mesh)
    bounds = mesh.bounds
    volume = signed_volume(mesh)
    return {
        "vertices": mesh.num_vertices,
        "faces": mesh.num_faces,
        "welded_vertices": topo.welded_vertices,
        "components": topo.components,
        "watertight": topo.watertight,
        "edge_manifold": topo.edge_manifold,
        "winding_consistent": topo.winding_consistent,
        "boundary_edges": topo.boundary_edges,
        "degenerate_faces": int(degenerate_faces(mesh).sum()),
        "bounds": bounds.tolist(),
        "extent": (bounds[1] - bounds[0]).tolist(),
        "area": float(mesh.face_areas().sum()),
        "volume": abs(volume) if topo.watertight and topo.winding_consistent else None,
        "has_uv": mesh.uvs is not None,
        "has_texture": mesh.has_texture,
        "has_vertex_colors": mesh.colors is not None,
        "has_normals": mesh.normals is not None,
        "materials": len(mesh.materials),
        "warnings": [{"code": w.code, "message": w.message} for w in mesh.warnings],
    }
