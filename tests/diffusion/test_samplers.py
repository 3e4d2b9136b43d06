"""Samplers against exact oracles: convergence orders, identities, reproducibility, distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gen3d.diffusion.sampling import SAMPLERS, get_sampler, num_evaluations, sample
from gen3d.diffusion.schedules import logsnr_sigmas
from tests.diffusion_oracles import Gaussian, GaussianMixture

SIGMA_MAX, SIGMA_MIN = 20.0, 0.02
STOCHASTIC = {"ddpm", "dpmpp_sde_2m", "dpmpp_sde_3m", "interpolant_sde"}
NEEDS_STATISTICS = {"dpm_solver_v3"}  # tested with its statistics in test_dpm_solver_v3.py

# Claimed global order on the probability-flow ODE. Multistep methods started with lower-order
# steps are bounded by their warm-up (a first-order first step leaves an O(h^2) global error),
# which is why 3M/PLMS/GHVB claim 2; UniPC's corrector lifts its first step, so bh1/bh2 reach 3.
CLAIMED_ORDER = {
    "euler": 1, "ddim": 1, "rf_euler": 1, "dpm_solver_1": 1, "dpmpp_1": 1, "deis_1": 1, "heavy_ball": 1,
    "heun": 2, "rf_heun": 2, "dpm_solver_2s": 2, "dpm_solver_2m": 2, "dpmpp_2m": 2, "dpmpp_2s": 2,
    "dpm_solver_3m": 2, "dpmpp_3m": 2, "plms": 2, "ipndm": 2, "ghvb": 2, "deis_2": 2,
    "dpmpp_2s_grid": 2, "dpm_solver_3s": 3, "unipc_bh1": 3, "unipc_bh2": 3,
}


@pytest.fixture(scope="module")
def gaussian():
    torch.manual_seed(0)
    d = 8
    return Gaussian(torch.randn(d, dtype=torch.float64), torch.tensor(np.geomspace(0.05, 5.0, d)))


def _x_T(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * SIGMA_MAX


def _run_at_nfe(name: str, denoiser, x_T, nfe: int) -> tuple[torch.Tensor, int]:
    steps = nfe
    while num_evaluations(name, steps) > nfe:
        steps -= 1
    return sample(name, denoiser, x_T.clone(), logsnr_sigmas(steps, SIGMA_MIN, SIGMA_MAX)), num_evaluations(name, steps)


# Third-order multistep whose second-order warm-up error is still comparable to its own over
# NFE 20-200: the measured slope lies between the two orders, so it gets a range, not a point.
BETWEEN_ORDERS = {"deis_3": (2, 3), "unipc_3_bh2": (3, 4), "pndm": (2, 4)}


def test_every_deterministic_sampler_has_a_claim():
    assert set(SAMPLERS) - STOCHASTIC - NEEDS_STATISTICS - set(CLAIMED_ORDER) == set(BETWEEN_ORDERS)


@pytest.mark.parametrize("name", sorted(BETWEEN_ORDERS))
def test_convergence_between_orders(gaussian, name):
    slope, errors = _measured_order(gaussian, name)
    low, high = BETWEEN_ORDERS[name]
    assert low - 0.3 <= slope <= high + 0.3, (slope, errors)


def _measured_order(gaussian, name: str) -> tuple[float, list[float]]:
    """Log-log slope of the RMSE to the exact endpoint against NFE over 30-200 evaluations."""
    x_T = _x_T(32, 8, 1)
    reference = gaussian.reference_endpoint(x_T, SIGMA_MAX, SIGMA_MIN)
    errors, nfes = [], []
    for nfe in (30, 60, 120, 200):
        x, used = _run_at_nfe(name, gaussian.denoiser, x_T, nfe)
        errors.append(float((x - reference).pow(2).mean().sqrt()))
        nfes.append(used)
    return -np.polyfit(np.log(nfes), np.log(errors), 1)[0], errors


@pytest.mark.parametrize("name", sorted(CLAIMED_ORDER))
def test_convergence_order_on_gaussian(gaussian, name):
    slope, errors = _measured_order(gaussian, name)
    assert abs(slope - CLAIMED_ORDER[name]) <= 0.3, (slope, errors)


def test_pndm_warmup_is_rk4(gaussian):
    """One PNDM warm-up step is classical RK4 in sigma: local error ~ step^5."""
    x = _x_T(16, 8, 2) / 4
    errors = []
    for delta in (0.2, 0.1, 0.05):
        sigmas = torch.tensor([5.0, 5.0 * (1 - delta), 0.0], dtype=torch.float64)
        steps: list[torch.Tensor] = []
        sample("pndm", gaussian.denoiser, x.clone(), sigmas, callback=lambda info, s=steps: s.append(info["x"]))
        exact = gaussian.flow(x, 5.0, float(sigmas[1]))
        errors.append(float((steps[0] - exact).abs().max()))
    slope = np.polyfit(np.log([0.2, 0.1, 0.05]), np.log(errors), 1)[0]
    assert abs(slope - 5) < 0.3


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture.random(d=16, k=6, seed=0, spread=100.0)


@pytest.fixture(scope="module")
def mixture_reference(mixture):
    x_T = _x_T(48, 16, 3)
    return x_T, mixture.reference_endpoint(x_T, SIGMA_MAX, SIGMA_MIN)


def test_mixture_covariances_span_100x(mixture):
    eig = torch.linalg.eigvalsh(mixture.covs)
    assert (eig[:, -1] / eig[:, 0] >= 100 - 1e-6).all()


def test_mixture_denoiser_is_posterior_mean(mixture):
    """Monte-Carlo check of E[x0 | x]: sample (x0, x) pairs, regress within a narrow bin."""
    gen = torch.Generator().manual_seed(0)
    x0, _ = mixture.sample(200_000, gen)
    sigma = 1.0
    x = x0 + sigma * torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    # E[(x0 - D(x))] = 0 and E[(x0 - D(x)) x^T] = 0 (orthogonality of the conditional mean)
    residual = x0 - mixture.denoiser(x, torch.tensor(sigma, dtype=torch.float64))
    assert residual.mean(0).abs().max() < 0.02
    assert (residual.T @ x / len(x)).abs().max() < 0.05


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - STOCHASTIC - NEEDS_STATISTICS))
def test_mixture_endpoint_accuracy(mixture, mixture_reference, name):
    x_T, reference = mixture_reference
    x, _ = _run_at_nfe(name, mixture.denoiser, x_T, 100)
    error = (x - reference).norm(dim=1)
    assert error.median() < (0.1 if CLAIMED_ORDER.get(name, 2) == 1 else 0.01), float(error.median())


def test_first_order_identities_step_by_step(mixture):
    """DDIM(eta=0) == DPM-Solver-1 == DPM-Solver++(1) == Euler == RF-Euler == DEIS-1, at every step."""
    x_T = _x_T(8, 16, 4)
    sigmas = logsnr_sigmas(12, SIGMA_MIN, SIGMA_MAX)
    trajectories = {}
    for name in ("ddim", "dpm_solver_1", "dpmpp_1", "euler", "rf_euler", "deis_1"):
        states = []
        sample(name, mixture.denoiser, x_T.clone(), sigmas, callback=lambda info, s=states: s.append(info["x"]))
        trajectories[name] = torch.stack(states)
    for name, states in trajectories.items():
        torch.testing.assert_close(states, trajectories["ddim"], rtol=1e-10, atol=1e-10, msg=name)


def test_ghvb_at_beta_one_is_plms_and_heavy_ball_at_one_is_ddim(mixture):
    x_T = _x_T(8, 16, 5)
    sigmas = logsnr_sigmas(15, SIGMA_MIN, SIGMA_MAX)
    plms = sample("plms", mixture.denoiser, x_T.clone(), sigmas)
    ghvb = get_sampler("ghvb")(mixture.denoiser, x_T.clone(), sigmas, beta=1.0)
    torch.testing.assert_close(ghvb, plms, rtol=1e-12, atol=1e-12)
    ddim = sample("ddim", mixture.denoiser, x_T.clone(), sigmas)
    heavy = get_sampler("heavy_ball")(mixture.denoiser, x_T.clone(), sigmas, beta=1.0)
    torch.testing.assert_close(heavy, ddim, rtol=1e-12, atol=1e-12)
    damped = get_sampler("ghvb")(mixture.denoiser, x_T.clone(), sigmas, beta=0.5)
    assert not torch.allclose(damped, plms)


def test_custom_timesteps_equal_builtin_spacing(mixture):
    from gen3d.diffusion.schedules import DiscreteVP

    schedule = DiscreteVP.make("scaled_linear")
    built_in = schedule.sigmas_for_timesteps(schedule.timesteps(10, "trailing"))
    custom = schedule.sigmas_for_timesteps(torch.tensor([999, 899, 799, 699, 599, 499, 399, 299, 199, 99]))
    x_T = _x_T(4, 16, 6) / SIGMA_MAX * float(built_in[0])
    a = sample("dpmpp_2m", mixture.denoiser, x_T.clone(), built_in)
    b = sample("dpmpp_2m", mixture.denoiser, x_T.clone(), custom)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_samplers_reproducible(mixture, name):
    x_T = _x_T(4, 16, 7)
    sigmas = logsnr_sigmas(10, SIGMA_MIN, SIGMA_MAX)
    runs = [sample(name, mixture.denoiser, x_T.clone(), sigmas, generator=torch.Generator().manual_seed(11))
            for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    other = sample(name, mixture.denoiser, x_T.clone(), sigmas, generator=torch.Generator().manual_seed(12))
    assert not torch.allclose(runs[0], other)


@pytest.mark.parametrize("name, steps", [("ddpm", 200), ("dpmpp_sde_2m", 60), ("dpmpp_sde_3m", 60),
                                         ("interpolant_sde", 300)])
def test_stochastic_samplers_match_the_distribution(mixture, name, steps):
    """Sample moments and per-component occupancy of 4000 draws against the mixture's own."""
    n = 4000
    gen = torch.Generator().manual_seed(21)
    x_T = torch.randn(n, 16, dtype=torch.float64, generator=gen) * 80.0
    sigmas = logsnr_sigmas(steps, 0.005, 80.0)
    x = sample(name, mixture.denoiser, x_T, sigmas, generator=gen)
    data, labels = mixture.sample(200_000, torch.Generator().manual_seed(22))
    assert (x.mean(0) - data.mean(0)).abs().max() < 4 * data.std(0).max() / n**0.5
    rel_cov = (torch.cov(x.T) - torch.cov(data.T)).abs().max() / torch.cov(data.T).abs().max()
    assert rel_cov < 0.08
    occupancy = torch.bincount(mixture.component_of(x), minlength=6).double() / n
    se = (mixture.weights * (1 - mixture.weights) / n).sqrt()
    assert ((occupancy - mixture.weights).abs() <= 4 * se + 0.005).all(), (occupancy, mixture.weights)


def test_callback_reports_every_step(mixture):
    seen = []
    sigmas = logsnr_sigmas(6, SIGMA_MIN, SIGMA_MAX)
    sample("unipc_bh2", mixture.denoiser, _x_T(2, 16, 8), sigmas, callback=seen.append)
    assert [s["i"] for s in seen] == list(range(6))
    assert set(seen[0]) == {"i", "x", "sigma", "sigma_next", "denoised"}


def test_unknown_sampler_name():
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("nope")


def test_deis_exact_log_coefficients_match_quadrature():
    """The closed-form log-sigma DEIS coefficients equal 12-point Gauss-Legendre on the same
    integrals (a lambda hides torch.log from the closed-form path), and to sigma = 0 the basis
    integrates to -sigma in total (a constant eps gives x' = x - sigma eps = D)."""
    from gen3d.diffusion.samplers_multistep import _deis_coefficients

    nodes = [float(np.log(v)) for v in (0.8, 1.3, 2.1)]
    exact = _deis_coefficients(nodes, 0.8, 0.45, torch.log)
    quadrature = _deis_coefficients(nodes, 0.8, 0.45, lambda s: torch.log(s))
    np.testing.assert_allclose(exact, quadrature, rtol=1e-10)
    to_zero = _deis_coefficients(nodes, 0.8, 0.0, torch.log)
    assert abs(sum(to_zero) + 0.8) < 1e-12 and not np.allclose(to_zero, [-0.8, 0, 0])


@pytest.mark.parametrize("steps", [6, 10, 20])
def test_deis_on_diffusers_sigmas_equals_diffusers_deis(steps):
    """diffusers' DEISMultistepScheduler ends at sigma(t = 0), not 0, with first order on its last
    step (second on the one before) under 15 steps. Given the same sigmas, gen3d's DEIS-3 makes the
    same steps: equal up to diffusers' float32 sigmas."""
    diffusers = pytest.importorskip("diffusers")
    from gen3d.diffusion.schedules import DiscreteVP

    schedule = DiscreteVP.make("linear")
    gmm = GaussianMixture.random(d=16, k=6, seed=1, spread=100.0)
    x_T = torch.randn(256, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x_T = x_T * (1 + schedule.sigma_max**2) ** 0.5
    scheduler = diffusers.DEISMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", solver_order=3,
                                                 timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    x = x_T / (1 + schedule.sigma_max**2) ** 0.5  # diffusers holds VP samples
    for t in scheduler.timesteps:
        sigma = schedule.t_to_sigma(torch.tensor(float(t), dtype=torch.float64))
        x_ve = x * (1 + sigma**2).sqrt()
        x = scheduler.step((x_ve - gmm.denoiser(x_ve, sigma)) / sigma, t, x).prev_sample
    sigmas = scheduler.sigmas.double()  # (steps + 1,): the timesteps' sigmas, then sigma(t = 0)
    ours = sample("deis_3", gmm.denoiser, x_T.clone(), sigmas) / (1 + sigmas[-1] ** 2).sqrt()  # VE -> VP
    assert float((ours - x).norm() / x.norm()) < 1e-4


@pytest.mark.parametrize("name, order, steps", [("dpmpp_2m", 2, 6), ("dpmpp_3m", 3, 15)])
def test_karras_sigmas_with_rounded_model_time_equal_diffusers(name, order, steps):
    """diffusers' use_karras_sigmas steps on exact Karras sigmas but evaluates the network at the rounded
    timestep. A discrete-time network through VPDenoiser with the same rounding (time_of rounded)
    gives diffusers' result to float32 precision; with fractional times (the default) it does not."""
    diffusers = pytest.importorskip("diffusers")
    from gen3d.diffusion.denoisers import VPDenoiser
    from gen3d.diffusion.schedules import DiscreteVP, karras_sigmas

    schedule = DiscreteVP.make("scaled_linear", beta_start=0.00085, beta_end=0.012)
    gmm = GaussianMixture.random(d=16, k=6, seed=0, spread=100.0)
    x_T = torch.randn(256, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x_T = x_T * (1 + schedule.sigma_max**2) ** 0.5

    def eps_network(x_vp, t, cond=None):  # a discrete-time eps network: the exact one at timestep t
        sigma = schedule.t_to_sigma(t).reshape(-1, 1)  # (B, 1)
        x_ve = x_vp * (1 + sigma**2).sqrt()
        return (x_ve - gmm.denoiser(x_ve, sigma[0])) / sigma

    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        solver_order=order, algorithm_type="dpmsolver++", final_sigmas_type="zero", use_karras_sigmas=True)
    scheduler.set_timesteps(steps)
    x = x_T / (1 + schedule.sigma_max**2) ** 0.5  # diffusers holds VP samples
    for t in scheduler.timesteps:
        x = scheduler.step(eps_network(scheduler.scale_model_input(x, t), torch.tensor([float(t)])), t, x).prev_sample
    sigmas = karras_sigmas(steps, float(schedule.sigma_min), float(schedule.sigma_max))  # (steps + 1,)
    rounded = VPDenoiser(eps_network, "eps", time_of=lambda s: schedule.sigma_to_t(s).round())
    fractional = VPDenoiser(eps_network, "eps", time_of=schedule.sigma_to_t)
    error = {label: float((sample(name, d, x_T.clone(), sigmas) - x).norm() / x.norm())  # final sigma 0: VE = VP
             for label, d in (("rounded", rounded), ("fractional", fractional))}
    assert error["rounded"] < 1e-5 and error["fractional"] > 1e-4, error  # measured: 2-6e-6 vs 1-2e-3
