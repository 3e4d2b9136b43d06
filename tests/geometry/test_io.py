"""Loading and validation: every shared mesh, and synthetic files for every reason code."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from gen3d.errors import InputError
from gen3d.geometry.io import load_mesh

VALID = [
    "BoxTextured.glb", "CesiumMilkTruck.glb", "Duck.glb", "busted.STL", "chair_model.obj", "cow.obj",
    "cube_compressed.obj", "fandisk.obj", "fuze.obj", "monkey.glb", "multibody.stl", "nancolor.obj",
    "notenoughindices.obj", "quadknot.obj", "rabbit.obj", "soup.stl", "spot.obj", "stanford-bunny.obj",
    "suzanne.obj", "teapot.obj", "torus.STL", "two_objects.obj",
]


def test_every_shared_file_is_classified(shared_meshes):
    """Every mesh file in shared/data is either listed as valid here or rejected with a reason."""
    files = sorted(p.name for p in shared_meshes.iterdir() if p.suffix.lower() in (".obj", ".glb", ".stl", ".ply"))
    assert set(files) == set(VALID) | {"empty.obj"}


@pytest.mark.parametrize("name", VALID)
def test_valid_shared_meshes_load(shared_meshes, name):
    mesh = load_mesh(shared_meshes / name)
    assert mesh.num_faces > 0 and np.isfinite(mesh.vertices).all()
    assert mesh.faces.min() >= 0 and mesh.faces.max() < mesh.num_vertices
    assert mesh.face_materials is not None and mesh.face_materials.max() < len(mesh.materials)


def test_empty_obj_rejected(shared_meshes):
    with pytest.raises(InputError) as info:
        load_mesh(shared_meshes / "empty.obj")
    assert info.value.reason == "empty"


def test_nan_colour_dropped_with_warning(shared_meshes):
    mesh = load_mesh(shared_meshes / "nancolor.obj")
    assert [w.code for w in mesh.warnings] == ["nonfinite_colors_dropped"]
    assert mesh.colors is None and mesh.num_faces == 12


def test_malformed_face_skipped_with_warning(shared_meshes):
    mesh = load_mesh(shared_meshes / "notenoughindices.obj")
    assert "malformed_face_skipped" in [w.code for w in mesh.warnings]
    assert mesh.num_faces == 1


def test_texture_path_with_space(shared_meshes):
    mesh = load_mesh(shared_meshes / "fuze.obj")
    assert mesh.has_texture and mesh.materials[0].texture.shape[:2] == (1024, 1024)
    assert mesh.uvs.shape == (mesh.num_vertices, 2)
    assert not mesh.warnings


def test_spot_uvs_without_material(shared_meshes):
    mesh = load_mesh(shared_meshes / "spot.obj")
    assert mesh.uvs is not None and not mesh.has_texture  # spot.obj names no .mtl


def test_scene_flattened_with_node_transforms(shared_meshes):
    """CesiumMilkTruck: the wheel geometry is instanced twice at different node translations."""
    mesh = load_mesh(shared_meshes / "CesiumMilkTruck.glb")
    scene = trimesh.load(shared_meshes / "CesiumMilkTruck.glb")
    expected_faces = sum(len(scene.geometry[scene.graph[n][1]].faces) for n in scene.graph.nodes_geometry)
    assert mesh.num_faces == expected_faces
    np.testing.assert_allclose(mesh.bounds, scene.bounds, atol=1e-6)
    textured = [m for m in mesh.materials if m.has_texture]
    plain = [m for m in mesh.materials if not m.has_texture]
    assert len(textured) >= 2 and len(plain) >= 2  # four primitives, two textured (wheels instanced twice)
    assert set(np.unique(mesh.face_materials)) == set(range(len(mesh.materials)))


def _write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("zero.obj", b"", "empty"),
        ("comments.obj", "# nothing\n", "empty"),
        ("points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no_faces"),
        ("nan.obj", "v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n", "nonfinite_vertices"),
        ("range.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "index_out_of_range"),
        ("negative.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf -1 -2 -7\n", "index_out_of_range"),
        ("flat.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 1 2\n", "degenerate_only"),
        ("garbage.glb", b"\x00\x01garbage" * 10, "unreadable"),
        ("garbage.ply", b"ply\nformat nonsense\n", "unreadable"),
        ("model.fbx", b"Kaydara FBX Binary", "unsupported_format"),
    ],
)
def test_bad_inputs_rejected_with_reason(tmp_path, name, content, reason):
    path = _write(tmp_path, name, content)
    with pytest.raises(InputError) as info:
        load_mesh(path)
    assert info.value.reason == reason
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_mesh(tmp_path / "nope.obj")
    assert info.value.reason == "missing_file"


def test_too_many_faces(shared_meshes):
    with pytest.raises(InputError) as info:
        load_mesh(shared_meshes / "cow.obj", max_faces=1000)
    assert info.value.reason == "too_many_faces"


def test_quads_are_triangulated(tmp_path):
    path = _write(tmp_path, "quad.obj", "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n")
    mesh = load_mesh(path)
    assert mesh.num_faces == 2
    assert mesh.face_areas().sum() == pytest.approx(1.0)


def test_missing_texture_warns(tmp_path):
    _write(tmp_path, "m.mtl", "newmtl a\nKd 1 1 1\nmap_Kd missing image.png\n")
    path = _write(tmp_path, "tex.obj", "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                  "usemtl a\nf 1/1 2/2 3/3\n")
    mesh = load_mesh(path)
    assert "texture_missing" in [w.code for w in mesh.warnings]


def test_off_and_uppercase_extension(tmp_path):
    path = _write(tmp_path, "tet.OFF", "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n")
    mesh = load_mesh(path)
    assert mesh.num_faces == 4
