"""Silhouette carving of a generated shape: the picture's foreground bounds the object as its camera
sees it (the visual hull of one view, Laurentini 1994), so occupancy that the front camera of the
condition ring would see outside the picture's silhouette is the model's error and is removed.

The picture is taken as the front view (as `--orient front` and `--width fit` take it), cropped like a
condition image: its foreground's bounding box centred in a square, the longest side a fixed share of
it. The generated shape, rendered from the ring's front camera, is cropped the same way, so a point of
the shape maps to the picture's pixel where the front camera sees it, up to the shape's own outline
box. Points more than `tolerance` pixels outside the picture's foreground are carved; nothing is added
where the picture shows more than the shape (a front view does not say at what depth).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from scipy import ndimage

from gen3d.render.cameras import transform_points
from gen3d.stages.shape_dit.orient import ConditionViews, coverage, ring_cameras
from gen3d.types import Mesh

TOLERANCE_PX = 1.5  # at the ring's resolution (256 px: the object's longest side spans 205 px); chosen in docs


class SilhouetteCarver:
    """`keep(points)`: whether points of the shape's frame lie inside the picture's silhouette cone.

    `mask`: (S, S) foreground of the picture cropped like a condition image (`prepare_image(image, S)`,
    margin `margin`); `placed`: the shape as output (normalized, width fitted); `transform`: the 4x4
    map from the frame `keep` is asked about to `placed`'s frame."""

    def __init__(self, mask: np.ndarray, placed: Mesh, transform: np.ndarray, views: ConditionViews, *,
                 tolerance: float = TOLERANCE_PX, margin: float = 0.1):
        front = replace(views, azimuths=(0.0,))
        covered = coverage(placed, front)[0].numpy()  # (R, R) the shape's front silhouette
        rows, cols = np.nonzero(covered)
        if len(rows) == 0:
            raise ValueError("the shape covers no pixel of the front camera")
        self.centre = np.array([cols.min() + cols.max() + 1, rows.min() + rows.max() + 1]) / 2.0  # (x, y) px
        self.side = float(max(np.ptp(rows), np.ptp(cols)) + 1)  # the outline box's longest side, px
        self.size = mask.shape[0]
        self.crop_side = (1 - 2 * margin) * self.size  # the picture's object spans this in the crop
        self.outside = ndimage.distance_transform_edt(np.asarray(mask) <= 0.5)  # (S, S) px to the foreground
        self.world_to_clip = ring_cameras(front).world_to_clip()  # (1, 4, 4)
        self.resolution, self.transform, self.tolerance = views.resolution, np.asarray(transform), tolerance

    def pixels(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) points -> (M, 2) (x, y) positions in the cropped picture, in pixels from its corner."""
        placed = points @ self.transform[:3, :3].T + self.transform[:3, 3]  # (M, 3)
        clip = transform_points(torch.as_tensor(placed, dtype=torch.float32), self.world_to_clip)[0]  # (M, 4)
        ndc = (clip[:, :2] / clip[:, 3:]).numpy().astype(np.float64)  # (M, 2)
        seen = np.stack([(ndc[:, 0] + 1) / 2, (1 - ndc[:, 1]) / 2], -1) * self.resolution  # (M, 2) render px
        return self.size / 2 + (seen - self.centre) * (self.crop_side / self.side)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """(M,) pixels between each point's image and the picture's foreground (0 inside; at the crop's size)."""
        xy = np.clip(np.floor(self.pixels(points)), 0, self.size - 1).astype(np.int64)  # (M, 2)
        return self.outside[xy[:, 1], xy[:, 0]]

    def keep(self, points: np.ndarray) -> np.ndarray:
        """(M,) bool: True where the point's image is within `tolerance` pixels of the picture's foreground."""
        return self.distance(np.asarray(points, dtype=np.float64)) <= self.tolerance
