"""Hierarchical extraction against dense extraction at the same resolution (the oracle): an analytic
field with parts thinner than the coarse grid, and a decoded VAE field of a shape with thin parts; the
ensemble field against its naive float64 formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.geometry.metrics import chamfer_l1
from gen3d.geometry.topology import face_components
from gen3d.stages.shape_vae.extract import extract_dense, extract_hierarchical


def thin_parts_field(p: torch.Tensor) -> torch.Tensor:
    """Scaled signed distance, positive inside: a sphere, a rod of radius 0.012 and a plate 0.02 thick
    (both thinner than the 1/32 coarse spacing), three components."""
    sphere = 0.5 - p.norm(dim=-1)
    rod = 0.012 - torch.sqrt((p[:, 0] - 0.7) ** 2 + (p[:, 2] - 0.1) ** 2)
    plate = torch.minimum(0.01 - (p[:, 1] + 0.8).abs(), 0.3 - p[:, [0, 2]].abs().max(dim=1).values)
    return 10 * torch.maximum(torch.maximum(sphere, rod), plate)


def test_hierarchical_equals_dense_with_thin_parts():
    dense, dense_stats = extract_dense(thin_parts_field, 128)
    fast, fast_stats = extract_hierarchical(thin_parts_field, 128, coarse=32, band=0.5)
    assert face_components(dense.faces)[0] == face_components(fast.faces)[0] == 3
    assert chamfer_l1(dense, fast, num_samples=20_000) <= 1e-4
    assert dense_stats.queries == 129**3 and fast_stats.queries * 4 < dense_stats.queries
    assert fast_stats.levels == 3


def test_without_the_band_a_part_thinner_than_the_coarse_grid_is_missed():
    """The band is what finds the rod and the plate: without it they vanish (the guard is needed)."""
    fast, _ = extract_hierarchical(thin_parts_field, 128, coarse=32, band=0.0)
    assert face_components(fast.faces)[0] == 1


def test_empty_field_and_bad_resolution():
    mesh, stats = extract_hierarchical(lambda p: -torch.ones(len(p)), 64, coarse=16)
    assert mesh is None and stats.queries == 17**3
    with pytest.raises(ValueError, match="power of two"):
        extract_hierarchical(thin_parts_field, 96, coarse=32)


def test_decoded_vae_field_with_thin_parts(tmp_path):
    """The bundled VAE's field of a table (thin legs and top): same surface and components as dense."""
    from gen3d.geometry.procedural import generate_shape
    from gen3d.stages.shape_vae.mesh import encode_mesh, latent_to_mesh
    from gen3d.stages.shape_vae.model import BUNDLED_VAE, load_vae

    if not (BUNDLED_VAE / "model.safetensors").is_file():
        pytest.skip("no bundled VAE weights in this checkout")
    vae = load_vae()
    table, _ = generate_shape("table", 1_000_008)  # a val seed
    z = encode_mesh(vae, table, seed=0)
    dense, dense_stats = latent_to_mesh(vae, z, resolution=128, method="dense")
    fast, fast_stats = latent_to_mesh(vae, z, resolution=128)
    assert face_components(dense.faces)[0] == face_components(fast.faces)[0]
    assert chamfer_l1(dense, fast, num_samples=20_000) <= 1e-4
    assert fast_stats.queries < dense_stats.queries


def test_ensemble_logits_are_the_logit_of_the_mean_probability():
    """Oracle: logit(mean(sigmoid)) computed naively in float64; N = 1 leaves the field unchanged."""
    from gen3d.stages.shape_vae.mesh import ensemble_logits

    logits = torch.randn(5, 1000, dtype=torch.float64) * 6  # (N, M)
    p = torch.sigmoid(logits).mean(0)
    assert torch.allclose(ensemble_logits(logits), torch.log(p / (1 - p)), atol=1e-9)
    assert torch.equal(ensemble_logits(logits[:1]), logits[0])
    assert torch.allclose(ensemble_logits(logits[:1].expand(3, -1)), logits[0], atol=1e-9)  # copies: the same field
    # far beyond where sigmoid saturates: finite, and the majority's side (2 of 3 inside -> inside)
    extreme = torch.tensor([[200.0, -200.0], [200.0, -200.0], [-200.0, 200.0]])
    out = ensemble_logits(extreme)
    assert torch.isfinite(out).all() and out[0] > 0 > out[1]
    assert torch.allclose(out, torch.tensor([np.log(2.0), -np.log(2.0)], dtype=out.dtype), atol=1e-6)


def test_a_second_extraction_reuses_the_lattice_and_carving_removes_only_what_it_is_told(monkeypatch):
    """DecodedLatents keeps the lattice values it computed: the same extraction again queries the VAE for
    no node, a carved one only for the nodes its new crossings need; carving x > 0 away leaves no surface
    beyond the cut (one cell of slack) and the far side's surface exactly as it was."""
    from gen3d.geometry.procedural import generate_shape
    from gen3d.stages.shape_vae.mesh import DecodedLatents, encode_mesh
    from gen3d.stages.shape_vae.model import BUNDLED_VAE, load_vae

    if not (BUNDLED_VAE / "model.safetensors").is_file():
        pytest.skip("no bundled VAE weights in this checkout")
    vae = load_vae()
    z = torch.cat([encode_mesh(vae, generate_shape(family, 1_000_008)[0], seed=0) for family in ("table", "chair")])
    queried = []
    query = vae.query
    monkeypatch.setattr(vae, "query", lambda planes, points: queried.append(points.shape[1]) or query(planes, points))
    decoded = DecodedLatents(vae, z)
    first, _ = decoded.to_mesh(128)
    first_queries = sum(queried)
    queried.clear()
    again, _ = decoded.to_mesh(128)
    assert sum(queried) == 0 and np.array_equal(again.vertices, first.vertices)
    kept_all, _ = decoded.to_mesh(128, keep=lambda p: np.ones(len(p), bool))
    assert sum(queried) == 0 and np.array_equal(kept_all.vertices, first.vertices)
    cut, _ = decoded.to_mesh(128, keep=lambda p: p[:, 0] <= 0.0)
    assert 0 < sum(queried) < first_queries / 4
    assert cut.vertices[:, 0].max() <= 2.0 / 128 + 1e-6 and first.vertices[:, 0].max() > 0.5
    far_first = first.vertices[first.vertices[:, 0] < -0.1]
    far_cut = cut.vertices[cut.vertices[:, 0] < -0.1]
    assert len(far_first) > 1000 and np.array_equal(np.unique(far_first, axis=0), np.unique(far_cut, axis=0))
