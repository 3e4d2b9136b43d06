"""CUDA runs of the torch rasterizer and a sampler equal the CPU runs (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from gen3d.diffusion.sampling import sample
from gen3d.diffusion.schedules import logsnr_sigmas
from tools.gpu_check import run, uv_sphere

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_rasterizer_cuda_equals_cpu():
    from gen3d.render.cameras import orbit_cameras

    vertices, faces = uv_sphere(60, 90)
    cams = orbit_cameras([20, -30], [0, 135], width=256)
    cpu, cpu_image, cpu_grad = run(vertices, faces, cams, 256, "cpu", True)
    gpu, gpu_image, gpu_grad = run(vertices, faces, cams, 256, "cuda", True)
    assert torch.equal(cpu.tri_id, gpu.tri_id.cpu())
    assert (cpu_image - gpu_image.cpu()).abs().max() < 1e-5
    assert (cpu_grad - gpu_grad.cpu()).norm() / cpu_grad.norm() < 1e-4


def test_sampler_cuda_equals_cpu():
    mean = torch.linspace(-1, 1, 8, dtype=torch.float64)

    def denoiser(x, sigma, cond=None):
        return mean.to(x) + (x - mean.to(x)) / (1 + sigma.reshape(-1, 1).to(x) ** 2)

    x_T = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 20
    sigmas = logsnr_sigmas(10, 0.02, 20.0)
    for name in ("unipc_bh2", "dpmpp_3m", "deis_3", "heun"):
        cpu = sample(name, denoiser, x_T.clone(), sigmas)
        gpu = sample(name, denoiser, x_T.cuda(), sigmas.cuda())
        assert (cpu - gpu.cpu()).abs().max() < 1e-10, name
