"""Geometric quality checks for noisy assets (DIRECT-3D-style filtering): each check has a named
reason, a threshold in FilterConfig and a measured value recorded for every asset.

Measures are taken on the cleaned mesh scaled so its longest side is 1.9 (rotation-invariant
ones use principal axes, so a rotated copy measures the same)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from gen3d.geometry.sampling import sample_surface
from gen3d.geometry.topology import vertex_components, weld_by_position
from gen3d.geometry.transform import LONGEST_SIDE
from gen3d.stages.curate.config import FilterConfig
from gen3d.types import Mesh

# reason -> what it means (written to the summary and docs)
FILTER_REASONS = {
    "degenerate": "most faces have zero area",
    "too_few_faces": "fewer faces than min_faces after cleanup",
    "tiny": "surface area too small for its size (a fragment, a line)",
    "flat": "smallest principal extent tiny against the largest (a card, a billboard, a plane)",
    "extreme_aspect": "largest principal extent far beyond the middle one (a stick, a wire)",
    "soup": "most faces sit in one- or two-triangle pieces (a triangle soup)",
    "scene": "several significant bodies spread apart (a scene, not an object)",
    "duplicate": "the same shape as another input up to position, scale, rotation and re-export",
}


class AssetScorer(Protocol):
    """A learned quality score plugged into filtering (CLIP agreement, DIRECT-3D density):
    higher is better; `name` becomes the measured key and the rejection reason `low_<name>`."""

    name: str
    threshold: float

    def score(self, mesh: Mesh, views) -> float: ...


def principal_extents(points: np.ndarray) -> np.ndarray:
    """(3,) extents (1st to 99th percentile) along the principal axes, largest first."""
    centred = points - points.mean(0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))  # ascending eigenvalues
    projected = centred @ vectors  # (N, 3)
    extents = np.percentile(projected, 99, axis=0) - np.percentile(projected, 1, axis=0)
    return np.sort(extents)[::-1]


def measure(mesh: Mesh, cfg: FilterConfig, seed: int) -> dict:
    """Every filter's measured value (mesh already cleaned; scale-free units)."""
    extent = float(np.ptp(mesh.vertices, axis=0).max())
    scale = LONGEST_SIDE / extent if extent > 0 else 0.0
    area = float(mesh.face_areas().sum()) * scale**2
    values = {"faces": int(mesh.num_faces), "area_ratio": area / LONGEST_SIDE**2}
    if area <= 0:
        return {**values, "flatness": 0.0, "aspect": float("inf"), "small_piece_share": 1.0,
                "bodies": 0, "body_gap": 0.0}
    points = sample_surface(mesh, 4096, seed).points * scale
    extents = principal_extents(points)
    values["flatness"] = float(extents[2] / extents[0]) if extents[0] > 0 else 0.0
    values["aspect"] = float(extents[0] / max(extents[1], 1e-12))
    values.update(_bodies(mesh, cfg, scale))
    return values


def _bodies(mesh: Mesh, cfg: FilterConfig, scale: float) -> dict:
    """Pieces welded by position: the share of faces in pieces of <= 2 faces, the number of
    significant bodies and their mean gap (bounding-box distance to the nearest other body)."""
    vertices, faces, _ = weld_by_position(mesh.vertices, mesh.faces)
    count, labels = vertex_components(faces)  # per face
    sizes = np.bincount(labels, minlength=count)
    small_share = float((sizes[labels] <= 2).mean())
    areas = np.bincount(labels, weights=mesh.face_areas(), minlength=count)
    significant = np.flatnonzero(areas >= cfg.significant_component_share * areas.sum())
    boxes = []
    for c in significant:
        corners = vertices[faces[labels == c].ravel()] * scale
        boxes.append((corners.min(0), corners.max(0)))
    gaps = []
    for i, (lo, hi) in enumerate(boxes):
        others = [np.linalg.norm(np.maximum(0, np.maximum(lo - other_hi, other_lo - hi)))
                  for j, (other_lo, other_hi) in enumerate(boxes) if j != i]
        gaps.append(min(others) if others else 0.0)
    return {"small_piece_share": small_share, "bodies": int(len(significant)),
            "body_gap": float(np.mean(gaps) / LONGEST_SIDE) if gaps else 0.0}


def first_failure(values: dict, cfg: FilterConfig) -> str | None:
    """The first failed check, in a fixed order, or None."""
    if values["faces"] < cfg.min_faces:
        return "too_few_faces"
    if values["area_ratio"] < cfg.min_area_ratio:
        return "tiny"
    if values["small_piece_share"] > 0.5:
        return "soup"
    if values["aspect"] > cfg.max_aspect:  # before flat: a stick is thin in two directions
        return "extreme_aspect"
    if values["flatness"] < cfg.flat_ratio:
        return "flat"
    if values["bodies"] >= cfg.scene_min_components and values["body_gap"] > cfg.scene_spread:
        return "scene"
    return None
