"""Rasterizer exactness against naive ray casting, shared edges, clipping and the GL backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.render.cameras import Cameras, orbit_cameras, transform_points
from gen3d.render.raster import rasterize
from gen3d.render.raster_gl import gl_available, rasterize_ids_gl
from tests.oracles import raycast_reference

needs_gl = pytest.mark.skipif(not gl_available(), reason="no EGL context (moderngl / Mesa EGL missing)")


def _random_scene(seed: int, num_faces: int = 16, crossing: bool = True):
    """A triangle soup in front of a camera at the origin, some triangles crossing the near plane
    and the camera plane, some behind the camera."""
    rng = np.random.default_rng(seed)
    centers = np.stack([rng.uniform(-1.2, 1.2, num_faces), rng.uniform(-1, 1, num_faces),
                        rng.uniform(-4.5, -0.6, num_faces)], axis=1)
    vertices = (centers[:, None, :] + rng.normal(scale=0.6, size=(num_faces, 3, 3))).reshape(-1, 3)
    if crossing:
        vertices[:3] = [[-0.3, -0.2, 0.5], [0.4, -0.1, -2.0], [0.0, 0.5, -1.5]]  # through the camera plane
        vertices[3:6] = [[-0.2, 0.1, -0.05], [0.3, 0.0, -0.3], [0.1, 0.4, -0.02]]  # through the near plane
        vertices[6:9] = [[0.0, 0.0, 1.0], [1.0, 0.0, 1.5], [0.0, 1.0, 1.2]]  # behind the camera
    faces = np.arange(3 * num_faces).reshape(-1, 3)
    return vertices, faces


def _camera(width: int, height: int, orthographic: bool = False) -> Cameras:
    c2w = torch.eye(4, dtype=torch.float64)[None]
    f = torch.tensor([0.8 * width if not orthographic else width / 3.0], dtype=torch.float64)
    return Cameras(c2w, f, f * (1.1 if not orthographic else 1.0), torch.tensor([width / 2 + 1.3], dtype=torch.float64),
                   torch.tensor([height / 2 - 0.7], dtype=torch.float64), width, height, near=0.1, far=4.0,
                   orthographic=orthographic)


def _check_against_reference(backend: str, seed: int, orthographic: bool, dtype: torch.dtype):
    width, height = 29, 21  # non-square, odd: catches transposed axes and half-pixel slips
    vertices, faces = _random_scene(seed, crossing=not orthographic)
    cam = _camera(width, height, orthographic)
    ref_ids, ref_bary, ambiguous = raycast_reference(
        vertices, faces, cam.c2w[0].numpy(), float(cam.fx[0]), float(cam.fy[0]), float(cam.cx[0]),
        float(cam.cy[0]), width, height, cam.near, cam.far, orthographic)
    clip = transform_points(torch.tensor(vertices, dtype=dtype), cam.world_to_clip().to(dtype))
    frags = rasterize(clip, torch.tensor(faces), (height, width), backend=backend)
    ids = frags.tri_id[0].numpy()
    clear = ~ambiguous
    assert ambiguous.mean() < 0.02
    np.testing.assert_array_equal(ids[clear], ref_ids[clear])
    covered = clear & (ref_ids >= 0)
    assert covered.sum() > 50  # the scene really covers pixels
    tolerance = 1e-9 if dtype == torch.float64 else 2e-4
    np.testing.assert_allclose(frags.bary[0].numpy()[covered], ref_bary[covered], atol=tolerance)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("orthographic", [False, True])
def test_torch_matches_raycasting(seed, orthographic):
    _check_against_reference("torch", seed, orthographic, torch.float64)


@pytest.mark.parametrize("seed", range(3))
def test_torch_float32_matches_raycasting(seed):
    _check_against_reference("torch", seed, False, torch.float32)


@needs_gl
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("orthographic", [False, True])
def test_gl_matches_raycasting(seed, orthographic):
    _check_against_reference("gl", seed, orthographic, torch.float32)


def test_batched_views_equal_single_views():
    vertices, faces = _random_scene(3, crossing=False)
    cams = orbit_cameras([10, -20, 40], [0, 100, 230], radius=6.0, width=40)
    clip = transform_points(torch.tensor(vertices, dtype=torch.float32), cams.world_to_clip())
    batched = rasterize(clip, torch.tensor(faces), 40, backend="torch")
    for i in range(3):
        single = rasterize(clip[i : i + 1], torch.tensor(faces), 40, backend="torch")
        assert torch.equal(single.tri_id[0], batched.tri_id[i])


def _grid_mesh(n: int = 24):
    """A wavy, jittered n x n grid of quads (2 triangles each) over [-1, 1]^2 with a flat square outline."""
    u = np.linspace(-1, 1, n + 1)
    xx, yy = np.meshgrid(u, u)
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.3, 0.3, size=(n + 1, n + 1, 2)) * (2 / n)
    jitter[[0, -1], :, :] = 0
    jitter[:, [0, -1], :] = 0
    height = 0.2 * np.sin(3 * xx) * np.cos(2 * yy) * (1 - xx**2) * (1 - yy**2)  # zero on the outline
    vertices = np.stack([xx + jitter[..., 0], yy + jitter[..., 1], height], -1)
    index = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices.reshape(-1, 3), faces


@pytest.mark.parametrize("backend", ["torch", pytest.param("gl", marks=needs_gl)])
def test_no_leaks_between_triangles_sharing_edges(backend):
    """Inside the projected grid every pixel is covered exactly once: no cracks along shared edges."""
    vertices, faces = _grid_mesh()
    cams = orbit_cameras([25], [30], radius=3.0, width=160)
    clip = transform_points(torch.tensor(vertices, dtype=torch.float32), cams.world_to_clip())
    frags = rasterize(clip, torch.tensor(faces), 160, backend=backend)
    # The outline of the grid is a quadrilateral: its inside by the four boundary edges.
    corners = clip[0, [0, 24, 24 * 25 + 24, 24 * 25]]
    ndc = (corners[:, :2] / corners[:, 3:]).numpy()
    xs = (np.arange(160) + 0.5) / 80 - 1
    px, py = np.meshgrid(xs, -xs)
    inside = np.ones_like(px, dtype=bool)
    for i in range(4):
        p0, p1 = ndc[i], ndc[(i + 1) % 4]
        cross = (p1[0] - p0[0]) * (py - p0[1]) - (p1[1] - p0[1]) * (px - p0[0])
        inside &= cross > 1e-3
    cross_sign = np.sign(np.cross(np.r_[ndc[1] - ndc[0], 0], np.r_[ndc[2] - ndc[1], 0])[2])
    if cross_sign < 0:  # outline wound clockwise on screen
        inside = np.ones_like(px, dtype=bool)
        for i in range(4):
            p0, p1 = ndc[i], ndc[(i + 1) % 4]
            inside &= (p1[0] - p0[0]) * (py - p0[1]) - (p1[1] - p0[1]) * (px - p0[0]) < -1e-3
    assert inside.sum() > 5000
    assert (frags.tri_id[0].numpy()[inside] >= 0).all()


@pytest.mark.parametrize("backend", ["torch", pytest.param("gl", marks=needs_gl)])
def test_near_plane_clips_per_pixel(backend):
    """A wall from behind the camera to far in front: where it is nearer than `near` (or behind
    the camera) the back wall shows; elsewhere the slanted wall does; as ray casting says."""
    near, width = 0.5, 32
    c2w = torch.eye(4, dtype=torch.float64)[None]
    f = torch.tensor([10.0], dtype=torch.float64)
    c = torch.tensor([16.0], dtype=torch.float64)
    cam = Cameras(c2w, f, f, c, c, width, width, near=near, far=10.0)
    vertices = np.array([[-2, -2, 1.0], [2, -2, -2.0], [2, 2, -2.0], [-2, 2, 1.0],
                         [-9, -9, -3.0], [9, -9, -3.0], [9, 9, -3.0], [-9, 9, -3.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    ref_ids, _, ambiguous = raycast_reference(vertices, faces, c2w[0].numpy(), 10.0, 10.0, 16.0, 16.0, width, width,
                                              near, 10.0)
    clip = transform_points(torch.tensor(vertices, dtype=torch.float32), cam.world_to_clip().float())
    ids = rasterize(clip, torch.tensor(faces), width, backend=backend).tri_id[0].numpy()
    np.testing.assert_array_equal(ids[~ambiguous], ref_ids[~ambiguous])
    assert (ref_ids[:, :4] >= 2).all() and (ref_ids[12:20, 18:24] <= 1).all()  # both cases occur


@needs_gl
def test_gl_agrees_with_torch_on_bunny(load_normalized):
    bunny = load_normalized("stanford-bunny.obj")
    cams = orbit_cameras([20] * 4, [0, 90, 180, 270], width=256)
    clip = transform_points(torch.tensor(bunny.vertices, dtype=torch.float32), cams.world_to_clip())
    faces = torch.tensor(bunny.faces)
    torch_frags = rasterize(clip, faces, 256, backend="torch")
    gl_ids, gl_bary = rasterize_ids_gl(clip, faces, 256, 256, with_barycentrics=True)
    covered = (torch_frags.tri_id >= 0) | (gl_ids >= 0)
    assert (torch_frags.tri_id == gl_ids)[covered].float().mean() >= 0.999
    same = (torch_frags.tri_id == gl_ids) & (gl_ids >= 0)
    assert (torch_frags.bary - gl_bary)[same].abs().max() <= 1e-4
