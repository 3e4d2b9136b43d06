"""Mesh cleanup (duplicates, degenerate faces, floating fragments) and simplification to a face budget."""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
from scipy.spatial import cKDTree

from gen3d.errors import FaceBudgetError, MeshWarning
from gen3d.geometry.topology import vertex_components, weld_by_position
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
    target = max_faces
    for _ in range(8):  # one pass from the welded mesh, aimed lower while it ends a little above the budget
        points, new_faces = _decimate(welded, faces, target, aggressiveness)
        if len(new_faces) <= max_faces:
            break
        target = max(4, int(target * max_faces / len(new_faces)) - 1)
    else:  # one pass stops far short on a mesh of many small parts: halve the count step by step instead
        points, new_faces = _decimate_gradually(welded, faces, max_faces, aggressiveness)
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


def _decimate(points: np.ndarray, faces: np.ndarray, target: int, aggressiveness: float):
    """One quadric decimation pass (fast-simplification) toward `target` faces: (points, faces)."""
    return fast_simplification.simplify(points, faces.astype(np.int32), target_count=target, agg=aggressiveness)


def _decimate_gradually(points: np.ndarray, faces: np.ndarray, max_faces: int, aggressiveness: float):
    """Passes that each at most halve the face count, every one from the last one's output, until at most
    `max_faces` remain. One pass asked for a large reduction can stop far above it (on the milk truck's 14
    parts: 666 faces whatever it is asked for, the shape damaged); small steps get there and keep more."""
    lower = 0  # how far below its usual target the next pass aims, after one that stalled or ended above budget
    for _ in range(64):
        if len(faces) <= max_faces:
            return points, faces
        target = max(4, max(max_faces, len(faces) // 2) - lower)
        new_points, new_faces = _decimate(points, faces, target, aggressiveness)
        stalled = len(new_faces) >= len(faces)
        lower = 2 * lower + len(new_faces) - target + 1 if stalled or target <= max_faces < len(new_faces) else 0
        if not stalled:
            points, faces = new_points, new_faces
    raise FaceBudgetError(f"could not reach {max_faces} faces (the decimation stops at {len(faces)}): "
                          "ask for more faces")
