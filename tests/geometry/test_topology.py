"""Components and watertightness on the position-welded copy (CONVENTIONS)."""

from __future__ import annotations

import numpy as np
import pytest

from gen3d.geometry.io import load_mesh
from gen3d.geometry.topology import face_components, topology_stats, vertex_components, weld_by_position


@pytest.mark.parametrize(
    "name, components, watertight",
    [
        ("spot.obj", 1, True),  # 13 pieces by trimesh's default merge, 1 closed body welded by position
        ("multibody.stl", 2, True),
        ("two_objects.obj", 2, False),
        ("soup.stl", 100, False),
        ("stanford-bunny.obj", 1, False),  # open at the base
        ("cow.obj", 1, True),
    ],
)
def test_real_mesh_topology(shared_meshes, name, components, watertight):
    stats = topology_stats(load_mesh(shared_meshes / name))
    assert stats.components == components
    assert stats.watertight == watertight


def test_chair_is_a_near_soup(shared_meshes):
    stats = topology_stats(load_mesh(shared_meshes / "chair_model.obj"))
    assert 12_000 < stats.components < 13_000  # shared/data/README: ~12.7k welded components


def test_weld_merges_within_tolerance_only():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1e-9, 0, 0], [1 + 1e-3, 0, 0]], dtype=float)
    welded, faces, mapping = weld_by_position(vertices, np.array([[0, 1, 2]]))
    assert len(welded) == 4  # 1e-9 is below 1e-6 x diagonal, 1e-3 is not
    assert mapping[3] == mapping[0] and mapping[4] != mapping[1]


def test_components_edge_vs_vertex():
    # Two triangles sharing only a corner: two edge-components, one vertex-component.
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    assert face_components(faces)[0] == 2
    assert vertex_components(faces)[0] == 1
