"""Silhouette carving: a box's own front silhouette keeps the box and what lies in front of or behind it
on the camera's rays, and carves what lies beside it; the crop mapping puts the box's corners, projected
by a pinhole camera written here, on the edges of the rasterized silhouette's box."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import trimesh

from gen3d.stages.shape_dit.orient import ConditionViews, silhouettes
from gen3d.stages.shape_dit.silhouette import SilhouetteCarver
from gen3d.types import Mesh

VIEWS = ConditionViews()  # the ring's camera at its 256 px
EXTENTS = np.array([1.2, 1.9, 0.8])


def _box(extents=EXTENTS) -> Mesh:
    box = trimesh.creation.box(extents=np.asarray(extents, float))
    return Mesh(vertices=np.asarray(box.vertices), faces=np.asarray(box.faces))


def _front_mask(mesh: Mesh) -> np.ndarray:
    """The mesh's front silhouette cropped like a condition image at the ring's size (the picture)."""
    return silhouettes(mesh, replace(VIEWS, azimuths=(0.0,)), VIEWS.resolution)[0].astype(np.float32)


def _eye() -> np.ndarray:
    elevation = np.radians(VIEWS.elevation)
    return VIEWS.radius * np.array([0.0, np.sin(elevation), np.cos(elevation)])


def _pinhole_pixels(points: np.ndarray) -> np.ndarray:
    """(M, 2) image-plane (x right, y down) coordinates of the front camera, in units of the focal length."""
    eye = _eye()
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rays = points - eye
    depth = rays @ forward
    return np.stack([rays @ right / depth, -(rays @ up) / depth], -1)


def test_the_box_and_its_camera_rays_are_kept_and_its_sides_carved():
    box = _box()
    carver = SilhouetteCarver(_front_mask(box), box, np.eye(4), VIEWS)
    inside = np.asarray(box.vertices) * 0.97  # just inside the box's corners
    assert carver.keep(inside).all()
    # in front of and behind the box's centre and corners on the front camera's rays: depth is not carved
    eye = _eye()
    on_rays = np.concatenate([eye + (inside - eye) * f for f in (0.8, 1.1)])
    assert carver.keep(on_rays).all()
    # beside the box (out of every ray through it): carved, whatever the depth
    half = EXTENTS / 2
    beside = np.array([[half[0] + 0.15, 0.0, 0.0], [-half[0] - 0.15, 0.3, 0.2], [0.0, half[1] + 0.2, 0.0],
                       [0.3, -half[1] - 0.25, half[2]]])  # below the front bottom edge (the camera looks down)
    assert not carver.keep(beside).any()
    assert (carver.distance(beside) > carver.tolerance).all()


def test_points_are_mapped_through_the_transform_to_the_output_frame():
    box = _box()
    carver = SilhouetteCarver(_front_mask(box), box, np.diag([2.0, 2.0, 2.0, 1.0]), VIEWS)
    points = np.random.default_rng(0).uniform(-1.2, 1.2, (500, 3))
    reference = SilhouetteCarver(_front_mask(box), box, np.eye(4), VIEWS)
    assert np.array_equal(carver.keep(points / 2), reference.keep(points))
    assert 0 < reference.keep(points).sum() < len(points)  # the sample straddles the silhouette


@pytest.mark.parametrize("extents", [(1.2, 1.9, 0.8), (1.9, 0.6, 1.0)])
def test_the_crop_puts_projected_corners_on_the_silhouettes_box(extents):
    box = _box(extents)
    mask = _front_mask(box)
    carver = SilhouetteCarver(mask, box, np.eye(4), VIEWS)
    corners = np.asarray(box.vertices)
    seen = carver.pixels(corners)  # (8, 2) in the cropped picture
    rows, cols = np.nonzero(mask > 0.5)
    box_of_seen = [seen[:, 0].min(), seen[:, 0].max(), seen[:, 1].min(), seen[:, 1].max()]
    assert box_of_seen == pytest.approx([cols.min(), cols.max() + 1, rows.min(), rows.max() + 1], abs=1.5)
    # the crop is a similarity of the pinhole image: the same shape of the projected corners, scaled
    pinhole = _pinhole_pixels(corners)
    scale = np.ptp(seen, axis=0) / np.ptp(pinhole, axis=0)
    assert scale[0] == pytest.approx(scale[1], rel=1e-4)
    assert np.allclose(seen - seen.mean(0), (pinhole - pinhole.mean(0)) * scale[0], atol=1e-3)


def test_a_shape_that_covers_nothing_is_rejected():
    far = Mesh(vertices=np.asarray(_box().vertices) + [0.0, 0.0, 10.0], faces=np.asarray(_box().faces))
    with pytest.raises(ValueError, match="covers no pixel"):
        SilhouetteCarver(_front_mask(_box()), far, np.eye(4), VIEWS)
