"""D3D-DiT building blocks: positions against the MAE formula, token layout, conditioning paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.nn.layers import sincos_2d, timestep_embedding
from gen3d.stages.shape_dit.model import D3DDiT, null_condition, preset_config


def _mae_sincos(dim: int, h: int, w: int) -> np.ndarray:
    """MAE's get_2d_sincos_pos_embed, written out independently (grid[0] = column, grid[1] = row)."""
    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    col, row = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.concatenate([one(dim // 2, row), one(dim // 2, col)], axis=1)


def test_sincos_matches_the_reference_formula():
    np.testing.assert_allclose(sincos_2d(64, 8, 24).numpy(), _mae_sincos(64, 8, 24), atol=1e-6)


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0.0, 500.0]), dim=8)
    freqs = np.exp(-np.log(10_000) * np.arange(4) / 4)
    np.testing.assert_allclose(emb[1].numpy(), np.concatenate([np.cos(500 * freqs), np.sin(500 * freqs)]), atol=1e-5)


def _cond(cfg, b=2, pixel_tokens=5, semantic_tokens=3):
    return {"pixel": torch.randn(b, pixel_tokens, cfg.pixel_dim),
            "semantic": torch.randn(b, semantic_tokens, cfg.semantic_dim),
            "semantic_cls": torch.randn(b, cfg.semantic_dim)}


def test_tiny_dit_shapes_and_every_condition_reaches_the_output():
    torch.manual_seed(0)
    cfg = preset_config("tiny", depth=2)
    net = D3DDiT(cfg)
    x, t = torch.randn(2, 8, 16, 48), torch.tensor([10.0, 900.0])
    cond = _cond(cfg)
    assert cfg.grid == (8, 24) and torch.count_nonzero(net(x, t, cond)) == 0  # zero-initialised output layer
    torch.nn.init.normal_(net.out.weight, std=0.02)
    out = net(x, t, cond)
    assert out.shape == x.shape
    assert net(x, t, _cond(cfg, pixel_tokens=9)).shape == x.shape  # pixel tokens are dropped after attention
    for key in cond:
        changed = dict(cond, **{key: cond[key] + 1.0})
        assert not torch.allclose(net(x, t, changed), out), key
    assert not torch.allclose(net(x, t + 100, cond), out)


def test_unpatchify_puts_each_patch_back_in_place():
    """With the positions and blocks silenced and a patch embedding/output pair that copy pixels, the
    network maps x to x: tokens are laid out and folded back in the same order."""
    cfg = preset_config("tiny", depth=0, width=32, latent_channels=8)
    net = D3DDiT(cfg)
    p, c = cfg.patch, cfg.latent_channels
    with torch.no_grad():
        net.pos.zero_()
        net.patch_embed.weight.zero_()
        net.patch_embed.bias.zero_()
        for ch in range(c):  # token channel (ch, dy, dx) of 32 = pixel (ch, dy, dx) of the patch
            for dy in range(p):
                for dx in range(p):
                    net.patch_embed.weight[ch * 4 + dy * 2 + dx, ch, dy, dx] = 1.0
        net.final_table.zero_()
        net.final_norm = torch.nn.Identity()
        net.time_mlp = torch.nn.Sequential(torch.nn.Linear(256, 32, bias=False))
        net.time_mlp[0].weight.zero_()
        net.cls_proj.weight.zero_()
        net.cls_proj.bias.zero_()
        net.out.weight.zero_()
        for ch in range(c):
            for dy in range(p):
                for dx in range(p):
                    net.out.weight[(dy * p + dx) * c + ch, ch * 4 + dy * 2 + dx] = 1.0
    x = torch.randn(1, 8, 16, 48)
    assert torch.allclose(net(x, torch.tensor([3.0]), _cond(cfg, b=1)), x, atol=1e-6)


def test_null_condition_zeroes_everything():
    cfg = preset_config("tiny")
    assert all(torch.count_nonzero(v) == 0 for v in null_condition(_cond(cfg)).values())


def test_tiny_encoder_feeds_the_tiny_dit():
    from gen3d.stages.shape_dit.encoders import TinyEncoderConfig, TinyImageEncoder

    encoder = TinyImageEncoder(TinyEncoderConfig())
    cond = encoder(torch.rand(2, 3, 128, 128))
    assert cond["pixel"].shape == (2, 64, 128) and cond["semantic"].shape == (2, 65, 128)
    assert torch.equal(cond["semantic_cls"], cond["semantic"][:, 0])
    net = D3DDiT(preset_config("tiny", depth=1))
    torch.nn.init.normal_(net.out.weight, std=0.02)
    out = net(torch.randn(2, 8, 16, 48), torch.tensor([5.0, 50.0]), cond)
    out.square().mean().backward()
    assert encoder.stem.weight.grad is not None and encoder.stem.weight.grad.abs().sum() > 0


def _expected_base_parameters() -> int:
    """D3D-DiT at the paper's sizes written out: width 1152, 28 blocks, d_z 16, patch 2, 1024-d conditions."""
    d, c, p, cond = 1152, 16, 2, 1024

    def lin(a, b):
        return a * b + b

    attention = lin(d, d) + lin(d, 2 * d) + lin(d, d)
    block = 2 * attention + 2 * d + lin(d, 4 * d) + lin(4 * d, d) + 6 * d  # self + cross, cross-norm affine, table
    top = (c * p * p * d + d) + lin(256, d) + lin(d, d) + lin(cond, d) + lin(d, 6 * d)  # patch, time MLP, cls, adaLN
    top += lin(cond, d) + lin(d, d) + lin(cond, d) + 2 * d + lin(d, p * p * c)  # pixel MLP, semantic, final
    return top + 28 * block


@pytest.mark.slow
def test_base_preset_at_paper_sizes_runs_a_denoising_step():
    from gen3d.diffusion.denoisers import VPDenoiser
    from gen3d.diffusion.sampling import sample
    from gen3d.diffusion.schedules import DiscreteVP

    torch.manual_seed(0)
    cfg = preset_config("base")
    net = D3DDiT(cfg).eval()
    assert cfg.grid == (16, 48) and sum(p.numel() for p in net.parameters()) == _expected_base_parameters()
    torch.nn.init.normal_(net.out.weight, std=0.02)  # a non-zero prediction, so the step does something
    schedule = DiscreteVP.make("linear")
    denoiser = VPDenoiser(net, "v", schedule.sigma_to_t)
    # DINOv2-L/14 at 518 px: 37^2 + 1 tokens; CLIP ViT-L/14 at 224 px: 16^2 + 1 tokens
    cond = _cond(cfg, b=1, pixel_tokens=1370, semantic_tokens=257)
    x_T = torch.randn(1, 16, 32, 96) * float((1 + schedule.sigma_max**2) ** 0.5)
    calls = []
    with torch.no_grad():  # one DDIM step from t = 999 to 0
        x = sample("ddim", denoiser, x_T, torch.tensor([schedule.sigma_max, 0.0]), cond=cond,
                   callback=lambda *args, **kw: calls.append(1))
    assert x.shape == x_T.shape and torch.isfinite(x).all() and x.abs().max() > 0 and len(calls) == 1
