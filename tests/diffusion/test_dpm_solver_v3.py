"""DPM-Solver-v3 against exact oracles: degenerate statistics are DDIM / DPM-Solver++, measured
statistics on Gaussian data equal their closed form and make the solver exact at any NFE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.diffusion.dpm_solver_v3 import ModelStatistics, compute_statistics, sample_dpm_solver_v3
from gen3d.diffusion.sampling import sample
from gen3d.diffusion.schedules import karras_sigmas, logsnr_sigmas
from tests.diffusion_oracles import Gaussian, GaussianMixture

SIGMA_MAX, SIGMA_MIN = 20.0, 0.02


@pytest.fixture(scope="module")
def gaussian():
    torch.manual_seed(0)
    return Gaussian(torch.randn(8, dtype=torch.float64), torch.tensor(np.geomspace(0.05, 5.0, 8)))


def _x_T(n, d, seed):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * SIGMA_MAX


@pytest.fixture(scope="module")
def gaussian_statistics(gaussian):
    return compute_statistics(gaussian.denoiser, _x_T(64, 8, 10), SIGMA_MAX, SIGMA_MIN, points=200)


def test_degenerate_statistics_are_ddim_step_for_step(gaussian):
    """l = 1, s = b = 0, order 1, no corrector: DDIM, also for sigmas that are not grid points."""
    degenerate = ModelStatistics.degenerate((8,), SIGMA_MIN, SIGMA_MAX, points=37)
    x_T = _x_T(16, 8, 1)
    for sigmas in (logsnr_sigmas(9, SIGMA_MIN, SIGMA_MAX), karras_sigmas(7, SIGMA_MIN, SIGMA_MAX)):
        ours, ddim = [], []
        sample_dpm_solver_v3(gaussian.denoiser, x_T.clone(), sigmas, statistics=degenerate, order=1,
                             corrector=False, callback=lambda info, o=ours: o.append(info["x"]))
        sample("ddim", gaussian.denoiser, x_T.clone(), sigmas, callback=lambda info, o=ddim: o.append(info["x"]))
        torch.testing.assert_close(torch.stack(ours), torch.stack(ddim), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("order, corrector, claimed", [(2, False, 2), (3, False, 2), (1, True, 2), (3, True, 2)])
def test_degenerate_convergence_order(gaussian, order, corrector, claimed):
    """Log-log slope of the error over NFE 30-200 (multistep warm-up bounds order 3 by 2; the
    corrector of pseudo order k + 1 lifts order 1 to 2)."""
    degenerate = ModelStatistics.degenerate((8,), SIGMA_MIN, SIGMA_MAX, points=400)
    x_T = _x_T(32, 8, 1)
    reference = gaussian.reference_endpoint(x_T, SIGMA_MAX, SIGMA_MIN)
    nfes = (30, 60, 120, 200)
    errors = [float((sample_dpm_solver_v3(gaussian.denoiser, x_T.clone(), logsnr_sigmas(n, SIGMA_MIN, SIGMA_MAX),
                                          statistics=degenerate, order=order, corrector=corrector)
                     - reference).pow(2).mean().sqrt()) for n in nfes]
    slope = -np.polyfit(np.log(nfes), np.log(errors), 1)[0]
    assert abs(slope - claimed) <= 0.3, (slope, errors)


def test_measured_statistics_match_gaussian_closed_form(gaussian, gaussian_statistics):
    """Diagonal Gaussian N(mu, c): D = mu + c/(c+sigma^2)(x - mu), so l = sigma^2/(c+sigma^2),
    f = -mu sigma^2/(c+sigma^2) is the same for every sample (s = 0) and b = f' = 2 mu c sigma^2/(c+sigma^2)^2."""
    stats = gaussian_statistics
    sigma2 = torch.exp(-2 * stats.lambdas)[:, None]  # (K+1, 1)
    c, mu = gaussian.variances[None], gaussian.mean[None]
    torch.testing.assert_close(stats.l, sigma2 / (c + sigma2), rtol=0, atol=1e-9)
    assert stats.s.abs().max() < 1e-6
    b_exact = 2 * mu * c * sigma2 / (c + sigma2) ** 2
    assert (stats.b - b_exact).abs().max() < 2e-3 * b_exact.abs().max()  # finite differences on the grid


def test_measured_statistics_make_gaussian_sampling_exact(gaussian, gaussian_statistics):
    """With exact statistics the reformulated ODE is linear with a known forcing: 3-5 steps reach
    the exact endpoint, where DPM-Solver++(3M) is still off by percent."""
    x_T = _x_T(32, 8, 2)
    reference = gaussian.reference_endpoint(x_T, SIGMA_MAX, SIGMA_MIN)
    for nfe in (3, 5):
        sigmas = logsnr_sigmas(nfe, SIGMA_MIN, SIGMA_MAX)
        ours = sample_dpm_solver_v3(gaussian.denoiser, x_T.clone(), sigmas, statistics=gaussian_statistics)
        dpmpp = sample("dpmpp_3m", gaussian.denoiser, x_T.clone(), sigmas)
        error, peer = float((ours - reference).abs().max()), float((dpmpp - reference).abs().max())
        assert error < 1e-3 and error < 0.01 * peer, (nfe, error, peer)


def test_measured_statistics_beat_degenerate_on_mixture():
    """On the GMM oracle (statistics fitted on other x_T draws) v3 beats its degenerate form (DPM-Solver++)."""
    mixture = GaussianMixture.random(d=16, k=6, seed=0)
    stats = compute_statistics(mixture.denoiser, _x_T(256, 16, 30), SIGMA_MAX, SIGMA_MIN, points=100)
    degenerate = ModelStatistics.degenerate((16,), SIGMA_MIN, SIGMA_MAX)
    x_T = _x_T(256, 16, 31)
    reference = mixture.reference_endpoint(x_T, SIGMA_MAX, SIGMA_MIN)
    sigmas = logsnr_sigmas(10, SIGMA_MIN, SIGMA_MAX)
    errors = [float((sample_dpm_solver_v3(mixture.denoiser, x_T.clone(), sigmas, statistics=s) - reference)
                    .norm(dim=1).median()) for s in (stats, degenerate)]
    assert errors[0] < 0.8 * errors[1], errors


def test_statistics_round_trip_and_errors(tmp_path, gaussian, gaussian_statistics):
    path = tmp_path / "stats"
    gaussian_statistics.save(path)
    loaded = ModelStatistics.load(path)
    for name in ("lambdas", "l", "s", "b"):
        torch.testing.assert_close(getattr(loaded, name), getattr(gaussian_statistics, name), rtol=0, atol=0)
    assert loaded.info["samples"] == 64
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a gen3d DPM-Solver-v3 statistics file"):
        ModelStatistics.load(tmp_path / "bad")
    sigmas = logsnr_sigmas(5, SIGMA_MIN, SIGMA_MAX)
    with pytest.raises(ValueError, match="needs statistics"):
        sample("dpm_solver_v3", gaussian.denoiser, _x_T(2, 8, 0), sigmas)
    with pytest.raises(ValueError, match="shape"):
        sample("dpm_solver_v3", gaussian.denoiser, _x_T(2, 4, 0), sigmas, statistics=loaded)


def test_hutchinson_statistics_close_to_exact():
    """Rademacher probes estimate the Jacobian diagonal without one backward pass per dimension:
    on the mixture (full Jacobians) 4 probes x 512 samples land within 0.03 of the exact l
    (off-diagonal terms average out as 1/sqrt(probes x samples); measured max 0.015)."""
    mixture = GaussianMixture.random(d=16, k=6, seed=0)
    x_T = _x_T(512, 16, 3)
    exact = compute_statistics(mixture.denoiser, x_T, SIGMA_MAX, SIGMA_MIN, points=40)
    probed = compute_statistics(mixture.denoiser, x_T, SIGMA_MAX, SIGMA_MIN, points=40, hutchinson_probes=4,
                                generator=torch.Generator().manual_seed(0))
    error = (probed.l - exact.l).abs()
    assert error.max() < 0.03 and error.mean() < 0.006, (error.max(), error.mean())
    assert exact.l.std() > 0.3  # l varies a lot over the grid: the check is not trivially met
