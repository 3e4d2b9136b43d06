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


def _glb_document(data: bytes) -> dict:
    (json_length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + json_length])


def test_geometry_only_glb_equals_trimesh_export(load_normalized):
    """The direct writer of geometry-only GLBs against trimesh's exporter (the oracle): same arrays
    read back by trimesh, same accessor bounds, a well-formed container."""
    from gen3d.geometry.export import geometry_glb, is_geometry_only

    bunny = load_normalized("stanford-bunny.obj")
    plain = Mesh(bunny.vertices, bunny.faces)
    assert is_geometry_only(plain)
    ours = geometry_glb(plain, extras={"seed": 1})
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.Trimesh(plain.vertices, plain.faces, process=False), geom_name="part0")
    theirs = scene.export(file_type="glb")
    loaded = [trimesh.load(trimesh.util.wrap_as_stream(d), file_type="glb", force="mesh", process=False)
              for d in (ours, theirs)]
    np.testing.assert_array_equal(loaded[0].vertices, loaded[1].vertices)
    np.testing.assert_array_equal(loaded[0].faces, loaded[1].faces)
    np.testing.assert_array_equal(loaded[0].faces, plain.faces)
    position = [_glb_document(d)["accessors"][d_i] for d, d_i in ((ours, 1), (theirs, 1))]
    assert position[0]["min"] == position[1]["min"] and position[0]["max"] == position[1]["max"]
    assert _glb_document(ours)["asset"]["extras"] == {"seed": 1}
    assert len(ours) == struct.unpack_from("<I", ours, 8)[0] and len(ours) % 4 == 0
    (json_length,) = struct.unpack_from("<I", ours, 12)
    assert struct.unpack_from("<I4s", ours, 20 + json_length) == (12 * plain.num_faces + 12 * plain.num_vertices,
                                                                   b"BIN\0")


def test_textured_mesh_is_not_geometry_only(shared_meshes):
    from gen3d.geometry.export import is_geometry_only

    mesh = load_mesh(shared_meshes / "fuze.obj")
    assert mesh.has_texture and not is_geometry_only(mesh)
    red = Material(base_color=np.array([1, 0, 0, 1.0]))
    assert not is_geometry_only(Mesh(mesh.vertices, mesh.faces, materials=[red]))


def test_geometry_glb_does_not_import_trimesh(tmp_path):
    """`gen3d generate` writes such GLBs; importing trimesh would add about 1 s to every run."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from gen3d.geometry.export import save_mesh; from gen3d.types import Mesh; "
            f"save_mesh(Mesh(np.eye(3), [[0, 1, 2]]), {str(tmp_path / 'a.glb')!r}, extras={{'seed': 0}}); "
            "print('trimesh' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert load_mesh(tmp_path / "a.glb").num_faces == 1
