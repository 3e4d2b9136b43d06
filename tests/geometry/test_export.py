"""Writers: round trips for every format, textures/colours/materials kept where the format can."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from gen3d.geometry.export import WRITERS, save_mesh
from gen3d.geometry.io import load_mesh
from gen3d.geometry.metrics import chamfer_l1
from gen3d.geometry.topology import weld_by_position
from gen3d.types import Material, Mesh


def _same_geometry(a: Mesh, b: Mesh) -> None:
    """Equal as triangle sets once welded (formats differ in how they split vertices)."""
    wa, fa, _ = weld_by_position(a.vertices, a.faces)
    wb, fb, _ = weld_by_position(b.vertices, b.faces)
    assert fa.shape == fb.shape
    np.testing.assert_allclose(np.sort(wa[fa].reshape(-1, 9), axis=0), np.sort(wb[fb].reshape(-1, 9), axis=0),
                               atol=1e-5)


@pytest.mark.parametrize("ext", sorted(WRITERS))
def test_round_trip_geometry(shared_meshes, tmp_path, ext):
    mesh = load_mesh(shared_meshes / "cow.obj")
    path = save_mesh(mesh, tmp_path / f"cow{ext}")
    back = load_mesh(path)
    _same_geometry(mesh, back)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


@pytest.mark.parametrize("ext", [".glb", ".obj"])
def test_round_trip_texture(shared_meshes, tmp_path, ext):
    mesh = load_mesh(shared_meshes / "fuze.obj")
    back = load_mesh(save_mesh(mesh, tmp_path / f"fuze out{ext}"))
    assert back.has_texture
    np.testing.assert_array_equal(back.materials[0].texture[..., :3], mesh.materials[0].texture[..., :3])
    # every (position, uv) pair survives; vertices may be re-ordered, so compare sorted rows
    rows_a = np.concatenate([np.round(mesh.vertices, 5), np.round(mesh.uvs, 5)], axis=1)
    rows_b = np.concatenate([np.round(back.vertices, 5), np.round(back.uvs, 5)], axis=1)
    np.testing.assert_allclose(rows_a[np.lexsort(rows_a.T)], rows_b[np.lexsort(rows_b.T)], atol=2e-5)


def test_multi_material_glb_keeps_materials(shared_meshes, tmp_path):
    mesh = load_mesh(shared_meshes / "CesiumMilkTruck.glb")
    back = load_mesh(save_mesh(mesh, tmp_path / "truck.glb"))
    assert back.num_faces == mesh.num_faces
    assert sum(m.has_texture for m in back.materials) == sum(m.has_texture for m in mesh.materials)
    factors = sorted(tuple(np.round(m.base_color, 2)) for m in mesh.materials if not m.has_texture)
    factors_back = sorted(tuple(np.round(m.base_color, 2)) for m in back.materials if not m.has_texture)
    assert factors == factors_back


@pytest.mark.parametrize("ext", [".glb", ".ply", ".obj"])
def test_round_trip_vertex_colours(tmp_path, ext):
    sphere = trimesh.creation.icosphere(subdivisions=2)
    colors = np.concatenate([(sphere.vertices + 1) / 2, np.ones((len(sphere.vertices), 1))], axis=1)
    mesh = Mesh(sphere.vertices, sphere.faces, colors=colors.astype(np.float32), materials=[Material()])
    back = load_mesh(save_mesh(mesh, tmp_path / f"ball{ext}"))
    assert back.colors is not None
    _, nearest = cKDTree(back.vertices).query(mesh.vertices)
    np.testing.assert_allclose(back.colors[nearest], mesh.colors, atol=1 / 255 + 1e-6)


def test_unknown_extension(tmp_path):
    mesh = Mesh(np.eye(3), [[0, 1, 2]])
    with pytest.raises(ValueError, match="cannot write"):
        save_mesh(mesh, tmp_path / "x.fbx")


def test_glb_extras(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=1)
    path = save_mesh(Mesh(sphere.vertices, sphere.faces), tmp_path / "a.glb", extras={"seed": 3, "model": "x"})
    data = path.read_bytes()
    (json_length,) = struct.unpack_from("<I", data, 12)
    assert json.loads(data[20 : 20 + json_length])["asset"]["extras"] == {"seed": 3, "model": "x"}
    assert len(data) == struct.unpack_from("<I", data, 8)[0]
    assert load_mesh(path).num_faces == 80  # still a valid GLB


def test_decimated_bunny_glb(load_normalized, tmp_path):
    from gen3d.geometry.cleanup import simplify

    bunny = load_normalized("stanford-bunny.obj")
    back = load_mesh(save_mesh(simplify(bunny, 5000), tmp_path / "bunny.glb"))
    assert back.num_faces <= 5000
    assert chamfer_l1(bunny, back) < 0.005
