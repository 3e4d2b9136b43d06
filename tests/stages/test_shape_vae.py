"""D3D-VAE: shapes, triplane layout and sampling against exact bilinear values, KL closed form,
checkpoint round trips, and the base preset at paper sizes (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gen3d.nn.layers import FourierEmbedder
from gen3d.stages.shape_vae.model import (
    D3DVAE,
    PLANE_AXES,
    DiagonalGaussian,
    load_vae,
    preset_config,
    roll_out,
    sample_triplane,
    unroll,
)
from gen3d.utils.checkpoint import CheckpointError, save_pretrained


def test_fourier_embedding_has_the_released_width_and_values():
    embed = FourierEmbedder(num_freqs=8)
    assert embed.out_dim == 51  # Direct3D: 51 position dims + 3 normal dims
    x = torch.tensor([[0.25, -0.5, 0.1]])
    out = embed(x)[0]
    assert torch.allclose(out[:3], x[0])
    k, axis = 3, 1  # sin(2^k pi x_axis) sits at 3 + axis * 8 + k
    assert math.isclose(float(out[3 + axis * 8 + k]), math.sin(2**k * math.pi * -0.5), abs_tol=1e-6)


def test_tiny_vae_shapes():
    cfg = preset_config("tiny")
    vae = D3DVAE(cfg)
    points, normals, queries = torch.rand(2, 300, 3) * 2 - 1, torch.randn(2, 300, 3), torch.rand(2, 77, 3) * 2 - 1
    posterior = vae.encode(points, normals)
    assert posterior.mean.shape == (2, *cfg.latent_shape) == (2, 8, 16, 48)
    planes = vae.decode(posterior.mode())
    assert planes.shape == (2, 3, cfg.triplane_channels, cfg.triplane_res, cfg.triplane_res) == (2, 3, 16, 64, 64)
    assert vae.query(planes, queries).shape == (2, 77)
    logits, kl = vae(points, normals, queries, noise=torch.zeros(2, *cfg.latent_shape))
    assert torch.allclose(logits, vae.query(planes, queries), atol=1e-5) and kl.shape == (2,)


def test_query_in_blocks_equals_one_pass(monkeypatch):
    """The CPU query runs the MLP over row blocks for speed: the same logits as the plain composition
    mlp(sample_triplane(...)) in one pass, with a block size that leaves a ragged last block."""
    import gen3d.stages.shape_vae.model as vae_module

    torch.manual_seed(0)
    vae = D3DVAE(preset_config("tiny")).eval()
    planes = torch.randn(3, 3, 16, 64, 64)
    points = torch.rand(3, 1000, 3) * 2 - 1
    with torch.no_grad():
        one_pass = vae.mlp(sample_triplane(planes, points))[..., 0]  # (3, 1000)
        monkeypatch.setattr(vae_module, "QUERY_ROWS", 3 * 128)  # 128 points per block, 8 blocks
        blocked = vae.query(planes, points)
    assert blocked.shape == (3, 1000)
    torch.testing.assert_close(blocked, one_pass, rtol=1e-6, atol=1e-6)


def test_roll_out_places_planes_side_by_side_and_round_trips():
    planes = torch.randn(2, 3, 4, 5, 5)
    image = roll_out(planes)
    assert image.shape == (2, 4, 5, 15)
    assert torch.equal(image[..., 5:10], planes[:, 1]) and torch.equal(unroll(image), planes)


def test_sample_triplane_reproduces_a_bilinear_field_exactly():
    """Bilinear sampling of a plane holding a linear function a*u + b*v + c returns it exactly
    (inside the outer half-texel), so features land on the documented axes of each plane."""
    res = 8
    centers = (torch.arange(res) + 0.5) / res * 2 - 1  # texel centres (align_corners=False)
    coeffs = [(0.3, -0.7, 0.1), (1.1, 0.2, -0.4), (-0.5, 0.9, 0.25)]
    planes = torch.zeros(1, 3, 1, res, res)
    for k, (a, b, c) in enumerate(coeffs):
        planes[0, k, 0] = a * centers[None, :] + b * centers[:, None] + c  # width = first axis, height = second
    points = (torch.rand(1, 200, 3) * 2 - 1) * (1 - 1 / res)
    feats = sample_triplane(planes, points)[0]  # (200, 3)
    for k, ((a, b, c), (u, v)) in enumerate(zip(coeffs, PLANE_AXES)):
        expected = a * points[0, :, u] + b * points[0, :, v] + c
        assert torch.allclose(feats[:, k], expected, atol=1e-5)


def test_kl_matches_torch_distributions():
    moments = torch.randn(3, 4, 2, 6)
    posterior = DiagonalGaussian(moments)
    q = torch.distributions.Normal(posterior.mean, (0.5 * posterior.logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(posterior.mean), torch.ones_like(posterior.mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).mean(1)
    assert torch.allclose(posterior.kl(), expected, atol=1e-6)


def test_checkpoint_round_trip_fp16_and_clear_errors(tmp_path):
    vae = D3DVAE(preset_config("tiny", encoder_layers=1))
    folder = save_pretrained(tmp_path / "vae", vae.state_dict(), "D3DVAE", vae.config_dict(), dtype=torch.float16)
    loaded = load_vae(folder)
    for (name, a), b in zip(vae.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a.half().float(), b), name
    with pytest.raises(CheckpointError, match="expected 'ShapeDiT'"):
        from gen3d.utils.checkpoint import load_pretrained

        load_pretrained(folder, "ShapeDiT")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_vae(tmp_path)


def _expected_base_parameters() -> int:
    """Parameter count of the base preset written out from the architecture description."""
    w, r, dz, f = 768, 32, 16, 8
    lin = lambda i, o: i * o + o  # noqa: E731
    block = lambda d, ctx: 2 * d + lin(d, d) + lin(ctx, 2 * d) + lin(d, d) + 2 * d + lin(d, 4 * d) + lin(4 * d, d)  # noqa: E731
    encoder = (lin(3 * (2 * f + 1) + 3, w) + 3 * r * r * w + block(w, w) + 2 * w + 8 * block(w, w) + 2 * w
               + lin(w, 2 * dz))
    conv = lambda i, o, k: i * o * k * k + o  # noqa: E731
    gn = lambda c: 2 * c  # noqa: E731
    res = lambda i, o: gn(i) + conv(i, o, 3) + gn(o) + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)  # noqa: E731
    ch = (512, 512, 256, 128)
    decoder = conv(dz, 512, 1) + res(512, 512) + (gn(512) + conv(512, 3 * 512, 1) + conv(512, 512, 1)) + res(512, 512)
    decoder += sum(conv(a, b, 3) + res(b, b) for a, b in zip(ch[:-1], ch[1:]))
    decoder += gn(128) + conv(128, 32, 3)
    mlp = lin(96, 64) + 3 * lin(64, 64) + lin(64, 1)
    return encoder + decoder + mlp


@pytest.mark.slow
def test_base_preset_at_paper_sizes():
    cfg = preset_config("base")
    vae = D3DVAE(cfg)
    assert cfg.latent_shape == (16, 32, 96) and cfg.triplane_res == 256
    assert sum(p.numel() for p in vae.parameters()) == _expected_base_parameters()
    points, normals = torch.rand(1, 8192, 3) * 2 - 1, torch.nn.functional.normalize(torch.randn(1, 8192, 3), dim=-1)
    queries = torch.rand(1, 2048, 3) * 2 - 1
    logits, kl = vae(points, normals, queries, noise=torch.randn(1, *cfg.latent_shape))
    assert logits.shape == (1, 2048) and torch.isfinite(logits).all()
    (logits.mean() + kl.mean()).backward()
    assert all(p.grad is not None for p in vae.parameters())
    with torch.no_grad():  # the paper's 81,920 input points, forward only
        many = torch.rand(1, 81_920, 3) * 2 - 1
        posterior = vae.encode(many, torch.nn.functional.normalize(torch.randn_like(many), dim=-1))
    assert posterior.mean.shape == (1, 16, 32, 96) and np.isfinite(posterior.mean.numpy()).all()
