"""Fields and metrics against closed-form answers and an independent ray-parity oracle."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from gen3d.geometry.fields import grid_points, marching_cubes, occupancy, signed_distance, unsigned_distance
from gen3d.geometry.metrics import compare_surfaces, volume_iou
from gen3d.geometry.sampling import sample_surface
from gen3d.geometry.stats import signed_volume as polyhedron_volume
from gen3d.types import Mesh
from tests.oracles import near_surface_points, ray_parity_inside


def _sphere(radius: float, subdivisions: int = 6) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(s.vertices, s.faces)


def _cube(side: float, center=(0.0, 0.0, 0.0)) -> Mesh:
    box = trimesh.creation.box(extents=(side, side, side))
    return Mesh(box.vertices + np.asarray(center), box.faces)


# ---------------------------------------------------------------- sampling


def test_sampling_is_seeded_and_on_surface():
    cube = _cube(1.0)
    a, b = sample_surface(cube, 5000, seed=3), sample_surface(cube, 5000, seed=3)
    np.testing.assert_array_equal(a.points, b.points)
    assert np.abs(np.abs(a.points).max(axis=1) - 0.5).max() < 1e-12  # every point on a face of the cube
    # normals are the outward face normals: they point along the coordinate of largest magnitude
    axis = np.abs(a.points).argmax(axis=1)
    np.testing.assert_allclose(a.normals[np.arange(5000), axis], np.sign(a.points[np.arange(5000), axis]))


def test_sampling_is_area_weighted():
    # Two triangles, areas 1/2 and 9/2: a tenth of the samples on the first.
    mesh = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 1], [0, 3, 1]], float),
                np.array([[0, 1, 2], [3, 4, 5]]))
    samples = sample_surface(mesh, 100_000, seed=0)
    share = (samples.face_index == 0).mean()
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 100_000)


# ---------------------------------------------------------------- fields


def test_signed_distance_of_sphere_matches_analytic():
    sphere = _sphere(0.5)
    points = np.random.default_rng(0).uniform(-1, 1, size=(20_000, 3))
    expected = np.linalg.norm(points, axis=1) - 0.5
    # the icosphere's faces lie within 0.5 * (1 - cos(edge angle / 2)) of the true sphere
    np.testing.assert_allclose(signed_distance(sphere, points), expected, atol=2e-4)


def test_winding_number_handles_open_meshes():
    """A sphere with a hole: inside points still read as inside (ray parity would leak)."""
    sphere = _sphere(0.5, subdivisions=4)
    keep = sphere.face_normals()[:, 1] < 0.95  # cut a cap off the top
    holed = sphere.submesh(keep)
    points = np.array([[0, 0, 0], [0.2, -0.1, 0.1], [0.0, 0.3, 0.0], [0.8, 0, 0]])
    np.testing.assert_array_equal(occupancy(holed, points), [True, True, True, False])


@pytest.mark.parametrize("name", ["stanford-bunny.obj", "spot.obj"])
def test_occupancy_agrees_with_ray_parity(load_normalized, name):
    mesh = load_normalized(name)
    uniform = np.random.default_rng(0).uniform(-1, 1, size=(100_000, 3))
    assert (occupancy(mesh, uniform) == ray_parity_inside(mesh, uniform)).mean() >= 0.99
    near = near_surface_points(mesh, 40_000, band=0.02, seed=1)
    near = near[unsigned_distance(mesh, near)[0] <= 0.02]
    assert len(near) > 30_000
    assert (occupancy(mesh, near) == ray_parity_inside(mesh, near)).mean() >= 0.97


def test_marching_cubes_world_coordinates_and_orientation():
    resolution, bounds, center, radius = 65, (-1.0, 1.0), np.array([0.3, -0.2, 0.1]), 0.45
    values = np.linalg.norm(grid_points(resolution, bounds) - center, axis=1) - radius
    mesh = marching_cubes(values.reshape((resolution,) * 3), bounds=bounds)
    distance_to_center = np.linalg.norm(mesh.vertices - center, axis=1)
    assert np.abs(distance_to_center - radius).max() < 2e-3  # linear interpolation error at h = 1/32
    assert polyhedron_volume(mesh) == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.01)  # outward
    occupancy_mesh = marching_cubes((values < 0).astype(float).reshape((resolution,) * 3), level=0.5,
                                    inside="positive")
    assert polyhedron_volume(occupancy_mesh) > 0


# ---------------------------------------------------------------- metrics


def test_concentric_spheres():
    inner, outer = _sphere(0.5), _sphere(0.6)
    result = compare_surfaces(inner, outer)
    assert result.chamfer_l1 == pytest.approx(0.1, rel=1e-3)
    assert result.fscore(0.09) == 0.0 and result.fscore(0.11) == 1.0
    assert result.normal_consistency == pytest.approx(1.0, abs=1e-4)
    expected_iou = polyhedron_volume(inner) / polyhedron_volume(outer)
    assert volume_iou(inner, outer) == pytest.approx(expected_iou, abs=0.01)


def test_shifted_cube_closed_form():
    """Unit cube vs the same cube shifted by d along x: every term of the mean distance by hand.

    Points of A's -x face are d from B; A's +x face lies inside B, at min(d, distance to the
    face's border) from B's surface, whose mean over the unit square is (1 - (1 - 2d)^3) / 6;
    the four side faces stick out of B over a strip of width d, mean distance d^2 / 2.
    """
    d = 0.1
    a, b = _cube(1.0), _cube(1.0, center=(d, 0, 0))
    expected = (d + (1 - (1 - 2 * d) ** 3) / 6 + 4 * d**2 / 2) / 6
    result = compare_surfaces(a, b)
    assert result.chamfer_l1 == pytest.approx(expected, rel=0.01)
    assert volume_iou(a, b) == pytest.approx((1 - d) / (1 + d), abs=0.005)
    # F-score at tau < d, per face of A: the -x face (at d) never counts; on the +x face the points
    # farther than tau from the square's border, (1 - 2 tau)^2 of it, do not count; a side face
    # misses the strip x < d - tau. Precision = recall by symmetry, so F = precision.
    tau = 0.5 * d
    precision = (0 + (1 - (1 - 2 * tau) ** 2) + 4 * (1 - (d - tau))) / 6
    assert result.fscore(tau) == pytest.approx(precision, abs=0.005)
    assert result.fscore(1.01 * d) == 1.0


def test_mesh_against_itself_and_decimated(load_normalized):
    from gen3d.geometry.cleanup import simplify

    bunny = load_normalized("stanford-bunny.obj")
    itself = compare_surfaces(bunny, bunny)
    assert itself.chamfer_l1 < 1e-9 and itself.fscore(1e-6) == 1.0
    decimated = compare_surfaces(bunny, simplify(bunny, 2000))
    assert 1e-4 < decimated.chamfer_l1 < 0.01
    assert decimated.normal_consistency > 0.9
