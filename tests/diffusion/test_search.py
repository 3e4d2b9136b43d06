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


def test_screened_search_refines_its_screened_best_on_all_draws():
    """screen=M: every candidate x start is searched on M draws, the `keep` best again on all draws; the
    result is the best of the second searches and its error is measured on all draws; a screen
    covering every draw is the plain search, result for result."""
    gmm = GaussianMixture.random(d=8, k=3, seed=2)
    sigma_max, sigma_min = 20.0, 0.02
    calib = torch.randn(96, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(100)) * sigma_max
    reference = gmm.reference_endpoint(calib, sigma_max, sigma_min)
    candidates = (("dpmpp_2m", {}), ("unipc_bh2", {"order": 2}))
    kwargs = dict(nfe=5, sigma_max=sigma_max, sigma_min=sigma_min, candidates=candidates, iterations=30)
    result = search_schedule(gmm.denoiser, calib, reference, screen=24, keep=2, **kwargs)
    screened = [h for h in result.history if h["draws"] == 24]
    refined = [h for h in result.history if h["draws"] == 96]
    assert len(screened) == 4 and len(refined) == 2  # 2 candidates x 2 starts, then the 2 kept
    assert sorted(h["error"] for h in refined)[0] == result.calibration_error
    from gen3d.diffusion.sampling import sample

    on_all = float((sample(result.sampler, gmm.denoiser, calib.clone(), result.sigmas, **result.options)
                    - reference).norm(dim=1).mean())
    assert abs(on_all - result.calibration_error) < 1e-12  # the reported error is the error on all draws
    plain = search_schedule(gmm.denoiser, calib, reference, **kwargs)
    same = search_schedule(gmm.denoiser, calib, reference, screen=96, **kwargs)
    assert plain.sampler == same.sampler and torch.equal(plain.sigmas, same.sigmas)
    assert plain.calibration_error == same.calibration_error
