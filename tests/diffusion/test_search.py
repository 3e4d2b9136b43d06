"""Solver-schedule search: it improves on its starting spacings, generalizes, and round-trips to disk."""

from __future__ import annotations

import torch

from gen3d.diffusion.search import SearchedSchedule, reference_by_sampler, search_schedule
from tests.diffusion_oracles import GaussianMixture


def test_search_improves_and_round_trips(tmp_path):
    gmm = GaussianMixture.random(d=8, k=3, seed=2)
    sigma_max, sigma_min = 20.0, 0.02
    calib = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(100)) * sigma_max
    reference = gmm.reference_endpoint(calib, sigma_max, sigma_min)
    result = search_schedule(gmm.denoiser, calib, reference, nfe=6, sigma_max=sigma_max, sigma_min=sigma_min,
                             candidates=(("dpmpp_2m", {}),), iterations=80)
    assert result.calibration_error < 0.9 * result.start_error
    assert len(result.sigmas) == 7 and result.sigmas[-1] == 0 and (result.sigmas.diff() < 0).all()
    # held-out draws (disjoint seed) improve too, against the same starting spacing
    held = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(200)) * sigma_max
    held_ref = gmm.reference_endpoint(held, sigma_max, sigma_min)
    from gen3d.diffusion.sampling import sample
    from gen3d.diffusion.schedules import karras_sigmas, logsnr_sigmas

    start = min(float((sample("dpmpp_2m", gmm.denoiser, held.clone(), s) - held_ref).norm(dim=1).mean())
                for s in (logsnr_sigmas(6, sigma_min, sigma_max), karras_sigmas(6, sigma_min, sigma_max)))
    searched = float((result.run(gmm.denoiser, held.clone()) - held_ref).norm(dim=1).mean())
    assert searched < start
    result.save(tmp_path / "nfe6")
    loaded = SearchedSchedule.load(tmp_path / "nfe6")
    assert loaded.sampler == "dpmpp_2m" and torch.equal(loaded.sigmas, result.sigmas.double())
    torch.testing.assert_close(loaded.run(gmm.denoiser, held.clone()), result.run(gmm.denoiser, held.clone()))


def test_reference_by_sampler_converges():
    gmm = GaussianMixture.random(d=4, k=2, seed=3)
    x = torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 10
    exact = gmm.reference_endpoint(x, 10.0, 0.01)
    assert (reference_by_sampler(gmm.denoiser, x, 10.0, 0.01, steps=200) - exact).abs().max() < 1e-5


def test_search_with_dpm_solver_v3_statistics_round_trips(tmp_path):
    """A searched DPM-Solver-v3 schedule saves its statistics next to it and reloads to the same result."""
    from gen3d.diffusion.dpm_solver_v3 import compute_statistics

    gmm = GaussianMixture.random(d=8, k=3, seed=2)
    sigma_max, sigma_min = 20.0, 0.02
    calib = torch.randn(32, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(100)) * sigma_max
    stats = compute_statistics(gmm.denoiser, calib, sigma_max, sigma_min, points=60)
    reference = gmm.reference_endpoint(calib, sigma_max, sigma_min)
    result = search_schedule(gmm.denoiser, calib, reference, nfe=5, sigma_max=sigma_max, sigma_min=sigma_min,
                             candidates=(("dpm_solver_v3", {"statistics": stats}),), iterations=40,
                             starts=(torch.linspace(sigma_max, sigma_min, 5).tolist() + [0.0],))
    assert result.calibration_error <= result.start_error
    result.save(tmp_path / "v3")
    loaded = SearchedSchedule.load(tmp_path / "v3")
    assert (tmp_path / "v3_statistics.safetensors").exists()
    torch.testing.assert_close(loaded.run(gmm.denoiser, calib.clone()), result.run(gmm.denoiser, calib.clone()),
                               rtol=0, atol=0)
