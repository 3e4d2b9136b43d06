"""Camera convention (CONVENTIONS), view files and cameras.json, renders of real meshes, `gen3d render`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gen3d import cli
from gen3d.render.cameras import orbit_cameras, transform_points
from gen3d.render.views import read_views, render_mesh, write_views


def _project(points, cams):
    clip = transform_points(torch.as_tensor(points, dtype=torch.float64), cams.world_to_clip().double())
    ndc = clip[..., :2] / clip[..., 3:]
    col = (ndc[..., 0] + 1) / 2 * cams.width  # continuous pixel coordinates
    row = (1 - ndc[..., 1]) / 2 * cams.height
    return col, row, clip[..., 3]


def test_orbit_convention():
    cams = orbit_cameras([0, 0, 90, 30], [0, 90, 0, 45], radius=2.5)
    np.testing.assert_allclose(cams.eye()[0].numpy(), [0, 0, 2.5], atol=1e-6)  # azimuth 0 on +Z
    np.testing.assert_allclose(cams.eye()[1].numpy(), [2.5, 0, 0], atol=1e-6)  # toward +X
    np.testing.assert_allclose(cams.eye()[2].numpy(), [0, 2.5, 0], atol=1e-6)  # elevation 90: above
    # every camera looks at the origin along its -Z axis
    forward = -cams.c2w[:, :3, 2]
    np.testing.assert_allclose((forward * cams.eye()).sum(-1).numpy(), -2.5, atol=1e-5)
    col, row, w = _project([[0.3, 0, 0], [0, 0.3, 0], [0, 0, 0]], orbit_cameras([0], [0], width=100))
    assert col[0, 0] > 50 and abs(row[0, 0] - 50) < 1e-6  # +X on the right from the front
    assert row[0, 1] < 50  # +Y toward row 0 (top)
    assert abs(col[0, 2] - 50) < 1e-9 and abs(row[0, 2] - 50) < 1e-9 and w[0, 2] == pytest.approx(2.5)


def test_pinhole_intrinsics_match_projection():
    cams = orbit_cameras([10], [35], width=64, height=48, fov_deg=50)
    cams.cx[0], cams.cy[0] = 30.25, 20.5
    point = torch.tensor([[0.2, -0.3, 0.4]], dtype=torch.float64)
    col, row, _ = _project(point, cams)
    cam_space = (torch.cat([point, torch.ones(1, 1, dtype=torch.float64)], -1) @ cams.world_to_camera()[0].double().T)
    x, y, z = cam_space[0, :3]
    assert float(col[0, 0]) == pytest.approx(float(cams.cx[0] + cams.fx[0] * x / -z), abs=1e-4)
    assert float(row[0, 0]) == pytest.approx(float(cams.cy[0] - cams.fy[0] * y / -z), abs=1e-4)


@pytest.mark.parametrize("name", ["stanford-bunny.obj", "spot.obj", "CesiumMilkTruck.glb"])
def test_real_mesh_masks_plausible(load_normalized, name):
    mesh = load_normalized(name)
    cams = orbit_cameras([20, -10, 60, 0, 0, 0], [0, 90, 180, 270, 45, 135], radius=3.5, width=96)
    views = render_mesh(mesh, cams, backend="torch")
    coverage = views.mask.mean(dim=(1, 2))
    assert ((coverage > 0.1) & (coverage < 0.7)).all(), coverage
    assert views.rgb[views.mask > 0.99].mean() > 0.2  # lit, not black
    depth = views.depth[views.mask > 0.99]
    assert depth.min() > 3.5 - 1.65 and depth.max() < 3.5 + 1.65  # inside the bounding sphere's range


def test_spot_texture_shows(load_normalized, shared_meshes):
    mesh = load_normalized("spot.obj")
    texture = np.asarray(Image.open(shared_meshes / "spot_texture.png").convert("RGB"))
    cams = orbit_cameras([20], [90], width=96)
    textured = render_mesh(mesh, cams, texture=texture)
    plain = render_mesh(mesh, cams)
    inside = textured.mask[0] > 0.99
    # Same shading, so the ratio of the renders is texture / base colour: spot's black patches
    # show as a clear share of near-zero ratios, its white body (241/255 in the texture) as ratios near 0.95.
    ratio = (textured.rgb[0][inside] / plain.rgb[0][inside].clamp(min=1e-3)).mean(-1)
    assert (ratio < 0.3).float().mean() > 0.05 and (ratio > 0.9).float().mean() > 0.3


def test_views_round_trip(tmp_path, load_normalized):
    mesh = load_normalized("cow.obj")
    cams = orbit_cameras([20, 20], [0, 180], width=64)
    views = render_mesh(mesh, cams)
    write_views(views, cams, tmp_path, extra=[{"azimuth": 0.0}, {"azimuth": 180.0}])
    back, cams_back = read_views(tmp_path)
    np.testing.assert_allclose(cams_back.c2w.numpy(), cams.c2w.double().numpy(), atol=1e-6)
    assert torch.allclose(back.depth, views.depth.float(), atol=1.0 / 10_000)
    assert torch.allclose(back.normal, views.normal.float(), atol=2.0 / 65535)
    assert torch.allclose(back.mask, views.mask.float(), atol=1 / 255)
    doc = json.loads((tmp_path / "cameras.json").read_text())
    assert doc["views"][1]["azimuth"] == 180.0 and doc["depth_scale"] > 0
    assert not list(tmp_path.glob(".*tmp*"))


def test_render_command(tmp_path, shared_meshes, capsys):
    code = cli.main(["render", str(shared_meshes / "spot.obj"), "--views", "3", "--res", "48", "--out",
                     str(tmp_path), "--texture", str(shared_meshes / "spot_texture.png"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["views"] == 3
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{i:03d}_{k}.png" for i in range(3) for k in ("rgb", "normal", "depth", "mask")]
                           + ["cameras.json"])
    with Image.open(tmp_path / "000_normal.png") as image:
        assert image.size == (48, 48)
    code = cli.main(["render", str(shared_meshes / "empty.obj"), "--out", str(tmp_path / "x"), "--json"])
    assert code == 2 and json.loads(capsys.readouterr().out)["reason"] == "empty"
