"""Mesh cleanup (duplicates, degenerate faces, floating fragments) and simplification to a face budget."""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
from scipy.spatial import cKDTree

from gen3d.errors import FaceBudgetError, MeshWarning
from gen3d.geometry.topology import collapsed_faces, vertex_components, weld_by_position
from gen3d.geometry.validate import degenerate_faces
from gen3d.types import Material, Mesh


@dataclass(frozen=True)
class CleanupReport:
    """What `cleanup` removed."""

    merged_vertices: int
    degenerate_faces: int
    duplicate_faces: int
    small_components: int
    small_component_faces: int


def cleanup(mesh: Mesh, *, min_component_area: float = 0.001) -> tuple[Mesh, CleanupReport]:
    """Merge identical vertices, drop degenerate and duplicate faces and tiny floating components.

    Vertices merge only when position *and* every attribute (normal, UV, colour) are equal, so
    UV seams survive. A floating component (faces connected through welded vertices) is dropped
    when its area is below `min_component_area` x the total area.
    """
    out = _merge_identical_vertices(mesh)
    merged = mesh.num_vertices - out.num_vertices

    degenerate = degenerate_faces(out)
    out = out.submesh(~degenerate)

    rotated = _canonical_rotation(out.faces)  # (F, 3)
    _, first = np.unique(rotated, axis=0, return_index=True)
    keep = np.zeros(out.num_faces, dtype=bool)
    keep[first] = True
    duplicates = int((~keep).sum())
    out = out.submesh(keep)

    _, welded_faces, _ = weld_by_position(out.vertices, out.faces)
    count, labels = vertex_components(welded_faces)
    area = np.bincount(labels, weights=out.face_areas(), minlength=count)  # (C,)
    small = area < min_component_area * area.sum()
    if small.all():  # never delete everything: keep the largest piece
        small[np.argmax(area)] = False
    drop_faces = small[labels]
    out = out.submesh(~drop_faces)
    report = CleanupReport(
        merged_vertices=merged,
        degenerate_faces=int(degenerate.sum()),
        duplicate_faces=duplicates,
        small_components=int(small.sum()),
        small_component_faces=int(drop_faces.sum()),
    )
    return out, report


def _merge_identical_vertices(mesh: Mesh) -> Mesh:
    columns = [mesh.vertices]
    for attr in (mesh.normals, mesh.uvs, mesh.colors):
        if attr is not None:
            columns.append(attr.astype(np.float64))
    key = np.concatenate(columns, axis=1)  # (V, 3 + attributes)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    pick = lambda a: None if a is None else a[first]  # noqa: E731
    return Mesh(
        vertices=mesh.vertices[first],
        faces=inverse.reshape(-1)[mesh.faces],
        normals=pick(mesh.normals),
        uvs=pick(mesh.uvs),
        colors=pick(mesh.colors),
        face_materials=mesh.face_materials,
        materials=list(mesh.materials),
        warnings=list(mesh.warnings),
    )


def _canonical_rotation(faces: np.ndarray) -> np.ndarray:
    """Each face cyclically rotated to start at its smallest index (same orientation kept)."""
    shift = np.argmin(faces, axis=1)  # (F,)
    idx = (shift[:, None] + np.arange(3)[None, :]) % 3  # (F, 3)
    return np.take_along_axis(faces, idx, axis=1)


def simplify(mesh: Mesh, max_faces: int, *, aggressiveness: float = 7.0) -> Mesh:
    """Quadric edge-collapse decimation (fast-simplification) to at most `max_faces` faces.

    Decimation runs on the position-welded mesh; vertex colours are carried over from the
    nearest original vertex. UV textures cannot be kept yet: they are dropped with the warning
    `texture_dropped` (baking comes with the texture stage).
    """
    if max_faces < 4:
        raise ValueError(f"a face budget of {max_faces} is too small (need >= 4)")
    if mesh.num_faces <= max_faces:
        return mesh.copy()
    warnings = list(mesh.warnings)
    if mesh.has_texture or mesh.uvs is not None:
        warnings.append(MeshWarning("texture_dropped", "simplification cannot keep UV textures yet: dropped"))
    welded, faces, _ = weld_by_position(mesh.vertices, mesh.faces)
    # a decimator sees faces repeated on the same corners (either way round) as non-manifold folds and stalls
    repeated, reversed_ = repeated_faces(faces)  # (F,) each
    two_sided = 4 * reversed_.sum() >= len(faces)  # half the faces or more in opposite pairs: a two-sided surface
    budget = max_faces // 2 if two_sided else max_faces  # one side decimated, the other its mirror
    try:
        points, new_faces = _decimate_to(welded, faces[~repeated], budget, aggressiveness)
    except FaceBudgetError:  # the quadric passes stall (folds, non-manifold corners): cluster the vertices
        points, new_faces = cluster_vertices(welded, faces[~repeated], budget)
        warnings.append(MeshWarning("decimation_clustered", "quadric decimation stalled above the budget: "
                                    "vertices merged on a grid instead (coarser)"))
    if two_sided:
        new_faces = np.concatenate([new_faces, new_faces[:, ::-1]])  # (2 F', 3) both sides again
    colors = None
    if mesh.colors is not None:
        _, nearest = cKDTree(mesh.vertices).query(points)
        colors = mesh.colors[nearest]
    base = mesh.materials[0].base_color if mesh.materials else np.ones(4, np.float32)
    return Mesh(
        vertices=points,
        faces=new_faces,
        colors=colors,
        face_materials=np.zeros(len(new_faces), np.int32),
        materials=[Material(name="simplified", base_color=base.copy())],
        warnings=warnings,
    )


def repeated_faces(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F,) bool twice: faces on the same three corners as an earlier face (either orientation), and those
    of them whose orientation is the opposite of the first such face's."""
    canonical = _canonical_rotation(faces)  # (F, 3)
    _, first, group = np.unique(np.sort(faces, axis=1), axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)  # (F,)
    repeated = np.ones(len(faces), dtype=bool)
    repeated[first] = False
    return repeated, np.any(canonical != canonical[first][group], axis=1)


def _decimate_to(points: np.ndarray, faces: np.ndarray, max_faces: int, aggressiveness: float):
    """At most `max_faces` faces: one pass from the mesh, aimed lower while it ends a little above the
    budget; where one pass stops far short (a mesh of many small parts), passes that halve the count."""
    if len(faces) <= max_faces:
        return points, faces
    target = max_faces
    for _ in range(8):
        new_points, new_faces = _decimate(points, faces, target, aggressiveness)
        if len(new_faces) <= max_faces:
            return new_points, new_faces
        target = max(4, int(target * max_faces / len(new_faces)) - 1)
    return _decimate_gradually(points, faces, max_faces, aggressiveness)


def _decimate(points: np.ndarray, faces: np.ndarray, target: int, aggressiveness: float):
    """One quadric decimation pass (fast-simplification) toward `target` faces: (points, faces)."""
    return fast_simplification.simplify(points, faces.astype(np.int32), target_count=target, agg=aggressiveness)


def _decimate_gradually(points: np.ndarray, faces: np.ndarray, max_faces: int, aggressiveness: float):
    """Passes that each at most halve the face count, every one from the last one's output, until at most
    `max_faces` remain. One pass asked for a large reduction can stop far above it (on the milk truck's 14
    parts: 666 faces whatever it is asked for, the shape damaged); small steps get there and keep more."""
    lower, stalls = 0, 0  # lower: how far below its usual target the next pass aims, after one that fell short
    while stalls < 4:
        if len(faces) <= max_faces:
            return points, faces
        target = max(4, max(max_faces, len(faces) // 2) - lower)
        new_points, new_faces = _decimate(points, faces, target, aggressiveness)
        stalled = len(new_faces) >= len(faces)
        stalls = stalls + 1 if stalled else 0
        lower = 2 * lower + len(new_faces) - target + 1 if stalled or target <= max_faces < len(new_faces) else 0
        if not stalled:
            points, faces = new_points, new_faces
    raise FaceBudgetError(f"could not reach {max_faces} faces (the decimation stops at {len(faces)}): "
                          "ask for more faces")


def cluster_vertices(points: np.ndarray, faces: np.ndarray, max_faces: int):
    """Vertex clustering (Rossignac and Borrel 1993) to at most `max_faces` faces: vertices in one cell of
    a cubic grid merge into their mean, faces that collapse or repeat go; the finest grid within the budget
    (bisection on the cells per side). Reaches any budget, at a coarser result than quadric decimation."""
    low, high = 1, 4096  # cells per side: `low` within the budget (or empty), `high` not
    best = None
    while high - low > 1:
        middle = (low + high) // 2
        candidate = _clustered(points, faces, middle)
        if len(candidate[1]) <= max_faces:
            low, best = middle, candidate if len(candidate[1]) else best
        else:
            high = middle
    if best is None:
        raise FaceBudgetError(f"could not reach {max_faces} faces: no grid leaves between 1 and {max_faces}")
    return best


def _clustered(points: np.ndarray, faces: np.ndarray, cells: int):
    """(points, faces) with the vertices merged per cell of a grid of `cells` per side over the bounds."""
    lower = points.min(axis=0)
    size = max(float(np.ptp(points, axis=0).max()), 1e-12) / cells
    cell = np.minimum(np.floor((points - lower) / size), cells - 1).astype(np.int64)  # (V, 3)
    _, cluster = np.unique(cell, axis=0, return_inverse=True)
    cluster = cluster.reshape(-1)  # (V,) cluster of each vertex
    count = np.bincount(cluster)
    merged = np.stack([np.bincount(cluster, weights=points[:, k]) / count for k in range(3)], axis=1)  # (C, 3)
    new_faces = cluster[faces]  # (F, 3)
    keep = ~collapsed_faces(new_faces)  # (F,)
    keep[keep] = ~repeated_faces(new_faces[keep])[0]
    out = Mesh(merged, new_faces).submesh(keep)  # unused vertices dropped
    return out.vertices, out.faces
