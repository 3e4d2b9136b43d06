"""Gradients of interpolation and antialiasing against finite differences; silhouette fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from gen3d.render.antialias import antialias, edge_neighbors
from gen3d.render.cameras import orbit_cameras, transform_points
from gen3d.render.raster import interpolate, rasterize
from gen3d.render.shading import mask


def _sphere(subdivisions: int = 2, radius: float = 0.6):
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(s.vertices, dtype=torch.float64), torch.tensor(s.faces)


def test_interpolate_gradcheck_attributes_and_positions():
    vertices, faces = _sphere(1)
    cams = orbit_cameras([20], [30], width=16, dtype=torch.float64)
    matrix = cams.world_to_clip()
    attributes = torch.randn(len(vertices), 2, dtype=torch.float64, requires_grad=True)
    positions = vertices.clone().requires_grad_(True)

    def render(pos, attr):
        frags = rasterize(transform_points(pos, matrix), faces, 16, backend="torch")
        return interpolate(attr, frags, faces)

    assert torch.autograd.gradcheck(render, (positions, attributes), eps=1e-6, atol=1e-6)


def _aa_image(vertices, faces, matrix, res, neighbors):
    clip = transform_points(vertices, matrix)
    frags = rasterize(clip, faces, res, backend="torch")
    color = torch.cat([mask(frags), interpolate(vertices * 0.5 + 0.5, frags, faces)], dim=-1)
    return antialias(color, frags, clip, faces, neighbors)


def test_antialias_gradient_matches_finite_differences():
    vertices, faces = _sphere(2)
    cams = orbit_cameras([15, -30], [20, 200], width=48, dtype=torch.float64)
    matrix, neighbors = cams.world_to_clip(), edge_neighbors(faces)
    weights = torch.randn(2, 48, 48, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    positions = vertices.clone().requires_grad_(True)
    (_aa_image(positions, faces, matrix, 48, neighbors) * weights).sum().backward()
    # silhouette vertices: the ones whose mask gradient is non-zero
    rng = np.random.default_rng(0)
    checked = 0
    for i in rng.choice(len(vertices), 30, replace=False):
        for k in range(3):
            step = torch.zeros_like(vertices)
            step[i, k] = 1e-6
            plus = (_aa_image(vertices + step, faces, matrix, 48, neighbors) * weights).sum()
            minus = (_aa_image(vertices - step, faces, matrix, 48, neighbors) * weights).sum()
            fd = float((plus - minus) / 2e-6)
            assert positions.grad[i, k].item() == pytest.approx(fd, rel=1e-5, abs=1e-7)
            checked += abs(fd) > 1e-3
    assert checked > 10  # many of the sampled coordinates do move the image


def test_mask_gradient_exists_only_with_antialiasing():
    vertices, faces = _sphere(2)
    cams = orbit_cameras([0], [0], width=32, dtype=torch.float64)
    positions = vertices.clone().requires_grad_(True)
    clip = transform_points(positions, cams.world_to_clip())
    frags = rasterize(clip, faces, 32, backend="torch")
    assert not mask(frags).requires_grad  # coverage alone is piecewise constant
    antialias(mask(frags), frags, clip, faces).sum().backward()
    silhouette_grad = positions.grad.norm(dim=1)
    assert (silhouette_grad > 0).sum() > 10
    # interior vertices facing the camera do not move the silhouette
    facing = positions.detach()[:, 2] > 0.55
    assert silhouette_grad[facing].abs().max() == 0


def _fit_masks(vertices, faces, cams, target, params, steps, lr, regularizer=None):
    matrix, neighbors = cams.world_to_clip(), edge_neighbors(faces)
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        verts = vertices()
        clip = transform_points(verts, matrix)
        frags = rasterize(clip, faces, cams.width, backend="torch")
        image = antialias(mask(frags), frags, clip, faces, neighbors)
        loss = ((image - target) ** 2).mean()
        if regularizer is not None:
            loss = loss + regularizer(verts)
        loss.backward()
        optimizer.step()


def _masks(vertices, faces, cams):
    clip = transform_points(vertices, cams.world_to_clip())
    frags = rasterize(clip, faces, cams.width, backend="torch")
    return antialias(mask(frags), frags, clip, faces).detach()


def test_translation_recovered_from_masks_alone():
    vertices, faces = _sphere(2, radius=0.5)
    vertices = vertices * torch.tensor([1.0, 0.7, 1.3], dtype=torch.float64)  # an ellipsoid
    cams = orbit_cameras([20, 10, -15], [0, 120, 240], width=64, dtype=torch.float64)
    target = _masks(vertices, faces, cams)
    offset = torch.tensor([0.2, -0.15, 0.1], dtype=torch.float64, requires_grad=True)
    _fit_masks(lambda: vertices + offset, faces, cams, target, [offset], steps=150, lr=0.01)
    assert offset.detach().norm() < 0.01


def test_sphere_deforms_toward_cube_masks():
    cube = trimesh.creation.box(extents=(1.1, 1.1, 1.1))
    cube = trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(cube.vertices, cube.faces, 0.2))
    cams = orbit_cameras([20, 20, 20, 20], [0, 90, 180, 270], width=64, dtype=torch.float64)
    target = _masks(torch.tensor(cube.vertices), torch.tensor(cube.faces), cams)
    vertices, faces = _sphere(3, radius=0.6)
    offsets = torch.zeros_like(vertices, requires_grad=True)
    neighbors_of = [[] for _ in range(len(vertices))]
    for a, b, c in faces.tolist():
        for u, v in ((a, b), (b, c), (c, a)):
            neighbors_of[u].append(v)
    rows = torch.tensor([i for i, ns in enumerate(neighbors_of) for _ in ns])
    cols = torch.tensor([j for ns in neighbors_of for j in ns])
    degree = torch.bincount(rows).to(torch.float64)

    def laplacian(verts):
        mean = torch.zeros_like(verts).index_add(0, rows, verts[cols]) / degree[:, None]
        return 0.5 * ((verts - mean) ** 2).sum(-1).mean()

    def iou(verts):
        a, b = _masks(verts, faces, cams) > 0.5, target > 0.5
        return float((a & b).sum() / (a | b).sum())

    before = iou(vertices)
    _fit_masks(lambda: vertices + offsets, faces, cams, target, [offsets], steps=200, lr=0.005, regularizer=laplacian)
    after = iou(vertices + offsets.detach())
    assert before < 0.85 and after > 0.95, (before, after)
