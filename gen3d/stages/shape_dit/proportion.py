"""Width fit of a generated shape to the input picture: the one proportion a single front view pins down
is its silhouette's width over its height, and the tiny model sometimes misreads it (a cylinder 1.22
wide where the truth is 1.04, tables too narrow). Scaling the shape along x (its width as the front
camera sees it) until its front silhouette has the picture's ratio mends that; the height and depth
stay the model's (a fit of the height instead was measured and mixes the depth in through the camera's
elevation: docs/image_to_3d.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gen3d.geometry.transform import apply_transform, normalize
from gen3d.stages.shape_dit.orient import ConditionViews, coverage
from gen3d.types import Mesh


def bbox_aspect(mask: np.ndarray) -> float:
    """Width over height of the bounding box of a (H, W) coverage (> 0.5), in pixels."""
    rows, cols = np.nonzero(np.asarray(mask) > 0.5)
    if len(rows) == 0:
        raise ValueError("empty coverage: no bounding box")
    return (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1)


def front_aspect(mesh: Mesh, views: ConditionViews) -> float:
    """Width over height of the silhouette's bounding box from the front camera of the ring (azimuth 0, the
    ring's elevation, radius and lens) at the ring's resolution."""
    front = coverage(mesh, replace(views, azimuths=(0.0,)))  # (1, R, R)
    return bbox_aspect(front[0].numpy())


def width_scale(mesh: Mesh, target_aspect: float, views: ConditionViews, *, iterations: int = 3) -> float:
    """The factor along x that gives `mesh`'s front silhouette the width/height ratio `target_aspect` once
    the stretched shape is normalized back to `mesh`'s longest side (as the output is normalized after
    the fit; the perspective of the ring's camera depends on the size). The ratio is nearly proportional
    to the x scale, so a fixed-point iteration k <- k * target / measured converges in a few renders."""
    longest = float(np.ptp(mesh.vertices, axis=0).max())
    scale = 1.0
    for _ in range(iterations):
        stretched = normalize(apply_transform(mesh, np.diag([scale, 1.0, 1.0, 1.0])), size=longest)[0]
        scale *= target_aspect / front_aspect(stretched, views)
    return float(scale)


def fitted_width_scale(mesh: Mesh, target_aspect: float, views: ConditionViews, *, tolerance: float = 0.03) -> float:
    """`width_scale`, or 1.0 when it differs from 1 by at most `tolerance` (relative: below it the difference
    is within what the silhouette measures, and the change would be noise)."""
    scale = width_scale(mesh, target_aspect, views)
    return 1.0 if abs(scale - 1.0) <= tolerance else scale

