"""Front-view orientation of generated shapes: the turn about the vertical axis, among the condition
cameras' azimuths, under which a shape's silhouette seen from the front camera (+Z) best matches the
input image's foreground.

The DiT is trained on views from a ring of cameras, so a picture does not say which of them took it:
for shapes whose sides look alike (a capsule seen along or across its axis) it may generate the shape
turned by a quarter. Rendering each sample's silhouette from every ring camera, cropped like the
condition image, finds the camera that explains the picture; turning the sample so that this camera
becomes the front one gives an output whose +Z side is the side the picture shows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from gen3d.render.cameras import Cameras, orbit_cameras, transform_points
from gen3d.render.raster import rasterize
from gen3d.stages.shape_dit.preprocess import prepare_image
from gen3d.types import Mesh


@dataclass(frozen=True)
class ConditionViews:
    """The camera ring the condition images were rendered from (the data preparation's defaults)."""

    elevation: float = 20.0  # degrees
    radius: float = 4.9
    fov_deg: float = 40.0
    azimuths: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0)  # degrees; azimuth 0 = camera on +Z
    resolution: int = 256  # px; silhouettes rendered at the training views' size crop like them (IoU ~0.99
    # between a shape's render and its prepared view here, against ~0.97 at 192 px)


def ring_cameras(views: ConditionViews) -> Cameras:
    """The ring's cameras, one per azimuth, at the ring's elevation, radius, lens and resolution."""
    return orbit_cameras([views.elevation] * len(views.azimuths), list(views.azimuths), radius=views.radius,
                         fov_deg=views.fov_deg, width=views.resolution)


def coverage(mesh: Mesh, views: ConditionViews, *, backend: str = "torch") -> torch.Tensor:
    """(A, R, R) bool: the pixels the mesh covers from each ring camera, at the ring's resolution R."""
    cameras = ring_cameras(views)
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32)  # (V, 3)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64)  # (F, 3)
    return rasterize(transform_points(vertices, cameras.world_to_clip()), faces, views.resolution,
                     backend=backend).tri_id >= 0  # (A, R, R)


def silhouettes(mesh: Mesh, views: ConditionViews, size: int, *, backend: str = "torch") -> np.ndarray:
    """(A, size, size) bool: the mesh's coverage from each ring camera, cropped, centred and padded like a
    condition image (so that only the outline's shape counts, not its scale or position)."""
    covered = coverage(mesh, views, backend=backend)  # (A, R, R)
    blank = Image.new("RGB", (views.resolution, views.resolution))
    out = np.zeros((len(views.azimuths), size, size), bool)
    for k, view in enumerate(covered.numpy()):
        if view.any():
            out[k] = prepare_image(blank, size, mask=view.astype(np.float32)).mask > 0.5
    return out


def front_turn(mesh: Mesh, target: np.ndarray, views: ConditionViews, *, margin: float = 0.02) -> float:
    """Degrees to turn `mesh` about +Y so that the ring camera whose silhouette best matches `target`
    ((S, S) coverage of the prepared input) becomes the front camera. The shape stays as it is unless
    another camera beats the front one by more than `margin` in IoU (symmetric shapes stay put).

    The camera opposite the front one is never chosen: its outline is the mirror image of the front
    one's, the same for any left-right symmetric shape, so a win there is noise; turning a shelf or a
    chair round on it costs far more than it can gain (measured: docs/image_to_3d.md)."""
    target = np.asarray(target) > 0.5
    azimuths = np.asarray(views.azimuths, dtype=np.float64)
    front = int(np.argmin(np.abs((azimuths + 180.0) % 360.0 - 180.0)))
    behind = np.isclose(np.abs((azimuths - azimuths[front]) % 360.0 - 180.0), 0.0)
    front = int(np.count_nonzero(~behind[:front]))  # its index among the cameras that may be chosen
    azimuths = azimuths[~behind]  # (A',) those cameras; only these are rendered
    masks = silhouettes(mesh, replace(views, azimuths=tuple(azimuths)), target.shape[0])  # (A', S, S)
    iou = (masks & target).sum((1, 2)) / np.maximum(1, (masks | target).sum((1, 2)))  # (A',)
    best = int(np.argmax(iou))
    if iou[best] - iou[front] <= margin:
        return 0.0
    return float(azimuths[front] - azimuths[best])


def turn_matrix(degrees: float) -> np.ndarray:
    """(3, 3) rotation about +Y by `degrees` (positive turns +Z toward +X, as azimuths grow)."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
