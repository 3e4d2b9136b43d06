"""Procedural shapes: watertight, canonical frame, seeded, with >= 3 continuous parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gen3d.geometry.io import load_mesh
from gen3d.geometry.procedural import FAMILIES, VAL_SEED_OFFSET, generate_shape, shape_seeds, write_procedural
from gen3d.geometry.stats import signed_volume
from gen3d.geometry.topology import topology_stats


def test_at_least_eight_families():
    assert len(FAMILIES) >= 8


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_is_watertight_and_canonical(family):
    params_seen = []
    for seed in range(6):
        mesh, params = generate_shape(family, seed)
        stats = topology_stats(mesh)
        assert stats.watertight and stats.winding_consistent and stats.components == 1, (family, seed)
        assert signed_volume(mesh) > 0  # outward-facing
        lo, hi = mesh.bounds
        assert (hi - lo).max() == pytest.approx(1.9) and np.allclose((lo + hi) / 2, 0)
        params_seen.append(params)
    continuous = [k for k, v in params_seen[0].items() if isinstance(v, float)]
    assert len(continuous) >= 3
    for key in continuous:  # each parameter actually varies with the seed
        assert len({round(p[key], 9) for p in params_seen}) > 1, key


def test_generation_is_deterministic():
    a, pa = generate_shape("chair", 7)
    b, pb = generate_shape("chair", 7)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert pa == pb


def test_chair_faces_front():
    """The chair's back rest sits at -Z, so its front faces +Z (CONVENTIONS frame)."""
    mesh, _ = generate_shape("chair", 0)
    top = mesh.vertices[:, 1] > 0.5 * mesh.vertices[:, 1].max()
    assert mesh.vertices[top, 2].mean() < 0


def test_train_and_val_seeds_are_disjoint():
    train = set(shape_seeds(1000, 0, "train"))
    val = set(shape_seeds(1000, 0, "val"))
    assert not train & val and min(val) >= VAL_SEED_OFFSET > max(train)
    with pytest.raises(ValueError):
        shape_seeds(10, VAL_SEED_OFFSET - 5, "train")


def test_write_procedural(tmp_path):
    rows = write_procedural(tmp_path, ["cup", "torus"], 4, seed=10, split="val")
    assert [r["family"] for r in rows] == ["cup", "torus", "cup", "torus"]
    lines = (tmp_path / "shapes.jsonl").read_text().splitlines()
    assert [json.loads(x)["file"] for x in lines] == [r["file"] for r in rows]
    for row in rows:
        mesh = load_mesh(tmp_path / row["file"])
        assert topology_stats(mesh).watertight
        assert row["seed"] >= VAL_SEED_OFFSET
