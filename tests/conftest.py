"""Shared fixtures: the real meshes in ../shared/data/meshes (skipped, saying why, where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MESHES = REPO_ROOT.parent / "shared" / "data" / "meshes"


@pytest.fixture(scope="session")
def shared_meshes() -> Path:
    if not SHARED_MESHES.is_dir():
        pytest.skip(f"real test meshes not found at {SHARED_MESHES} (CI and developer machines have them)")
    return SHARED_MESHES


@pytest.fixture(scope="session")
def load_normalized(shared_meshes):
    """Load a shared mesh by file name, normalized to the canonical frame (cached)."""
    from gen3d.geometry.io import load_mesh
    from gen3d.geometry.transform import normalize

    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = normalize(load_mesh(shared_meshes / name))[0]
        return cache[name]

    return load
