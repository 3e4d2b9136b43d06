"""Topology on a copy welded by position only (CONVENTIONS: tolerance 1e-6 x bounding-box diagonal)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
from scipy.spatial import cKDTree

from gen3d.types import Mesh

WELD_TOLERANCE = 1e-6  # relative to the bounding-box diagonal


def weld_by_position(
    vertices: np.ndarray, faces: np.ndarray, rel_tol: float = WELD_TOLERANCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge vertices closer than rel_tol x bbox diagonal, ignoring UV/normal seams.

    Returns (welded vertices (V', 3), faces (F, 3) into them, map (V,) old -> new index).
    Merging is transitive (connected components of the "closer than tol" graph).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if len(vertices) == 0:
        return vertices.reshape(0, 3), np.asarray(faces, dtype=np.int64).reshape(-1, 3), np.zeros(0, np.int64)
    diagonal = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    tol = rel_tol * diagonal
    pairs = cKDTree(vertices).query_pairs(r=tol, output_type="ndarray") if tol > 0 else np.zeros((0, 2), int)
    n = len(vertices)
    graph = scipy.sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)  # (V,)
    # Renumber groups in order of first appearance, and take each group's first vertex.
    _, first, old_to_new = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    old_to_new = rank[old_to_new]
    welded = vertices[np.sort(first)]
    return welded, old_to_new[np.asarray(faces, dtype=np.int64)], old_to_new


def face_components(faces: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of faces joined by manifold edges: (count, label per face (F,)).

    Two faces are adjacent when they share an edge that exactly two faces use (trimesh's
    `split` rule). Triangles touching only at corners, or only along edges shared by three or
    more faces (stacked duplicates, T-junction fans), are separate components: a triangle soup
    or a near-soup such as chair_model.obj counts one component per piece.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return 0, np.zeros(0, dtype=np.int64)
    num_faces = len(faces)
    undirected = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)  # (3F, 2)
    face_of = np.tile(np.arange(num_faces), 3)  # (3F,)
    _, edge_id, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    edge_id = edge_id.reshape(-1)
    manifold = counts[edge_id] == 2  # (3F,)
    # Bipartite face-edge graph over manifold edges: edge e is node num_faces + e.
    n = num_faces + len(counts)
    rows, cols = face_of[manifold], edge_id[manifold] + num_faces
    graph = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    _, face_labels = np.unique(labels[:num_faces], return_inverse=True)
    return int(face_labels.max()) + 1, face_labels


@dataclass(frozen=True)
class TopologyStats:
    """Counts measured on the position-welded copy of a mesh."""

    welded_vertices: int
    components: int
    watertight: bool  # every edge shared by exactly two faces
    edge_manifold: bool  # no edge shared by more than two faces
    winding_consistent: bool  # every two-face edge is traversed in opposite directions
    boundary_edges: int
    nonmanifold_edges: int


def edge_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2), how many faces use each (E,), and their orientation sum (E,).

    The orientation sum is +1 per face traversing the edge low->high and -1 per high->low, so a
    consistently wound two-face edge sums to 0.
    """
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2)
    sign = np.where(directed[:, 0] < directed[:, 1], 1, -1)
    undirected = np.sort(directed, axis=1)
    edges, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    orientation = np.bincount(inverse.reshape(-1), weights=sign, minlength=len(edges))
    return edges, counts, orientation


def collapsed_faces(faces: np.ndarray) -> np.ndarray:
    """(F,) bool: faces with two equal corner indices (no area, no edges of their own)."""
    return (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])


def topology_stats(mesh: Mesh) -> TopologyStats:
    """Components, watertightness and manifoldness of `mesh` welded by position only."""
    welded, faces, _ = weld_by_position(mesh.vertices, mesh.faces)
    faces = faces[~collapsed_faces(faces)]  # faces that welding collapsed carry no edges of their own
    if len(faces) == 0:
        return TopologyStats(len(welded), 0, False, True, True, 0, 0)
    count, _ = face_components(faces)
    _, counts, orientation = edge_counts(faces)
    two = counts == 2
    return TopologyStats(
        welded_vertices=len(welded),
        components=count,
        watertight=bool(np.all(two)),
        edge_manifold=bool(np.all(counts <= 2)),
        winding_consistent=bool(np.all(orientation[two] == 0)),
        boundary_edges=int(np.sum(counts == 1)),
        nonmanifold_edges=int(np.sum(counts > 2)),
    )


def vertex_components(faces: np.ndarray) -> tuple[int, np.ndarray]:
    """Components of faces joined by shared vertices (pieces that touch at all): (count, labels (F,))."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return 0, np.zeros(0, dtype=np.int64)
    num_vertices = int(faces.max()) + 1
    face_of = np.repeat(np.arange(len(faces)), 3)  # (3F,)
    n = num_vertices + len(faces)
    graph = scipy.sparse.coo_matrix(
        (np.ones(3 * len(faces)), (faces.reshape(-1), face_of + num_vertices)), shape=(n, n)
    )
    _, labels = scipy.sparse.csgraph.connected_components(graph, directed=False)
    _, face_labels = np.unique(labels[num_vertices:], return_inverse=True)
    return int(face_labels.max()) + 1, face_labels
