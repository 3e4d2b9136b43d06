"""Schedules, spacings and the denoiser wrappers, against formulas written out independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gen3d.diffusion.denoisers import ClassifierFreeGuidance, DynamicThresholding, EDMDenoiser, FlowDenoiser, VPDenoiser
from gen3d.diffusion.schedules import ContinuousVP, DiscreteVP, karras_sigmas, lambda_of, logsnr_sigmas, time_sigmas
from tests.diffusion_oracles import GaussianMixture


def test_discrete_vp_linear_alphas():
    schedule = DiscreteVP.make("linear")
    betas = np.linspace(1e-4, 2e-2, 1000)
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=1e-12)
    sd = DiscreteVP.make("scaled_linear")
    np.testing.assert_allclose(sd.alphas_cumprod[0].item(), 1 - 0.00085, rtol=1e-12)
    cosine = DiscreteVP.make("cosine")
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert cosine.alphas_cumprod[499].item() == pytest.approx(f(500) / f(0), rel=1e-9)


def test_timestep_spacings_as_diffusers_names_them():
    schedule = DiscreteVP.make("scaled_linear")
    assert schedule.timesteps(10, "trailing").tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert schedule.timesteps(10, "leading").tolist() == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert schedule.timesteps(4, "linspace").tolist() == [999, 666, 333, 0]
    # linspace(0, 999, 7) = 0, 166.5, 333, 499.5, 666, 832.5, 999: halves to even, the 0 dropped
    assert schedule.timesteps(6, "linspace_skip_zero").tolist() == [999, 832, 666, 500, 333, 166]


@pytest.mark.parametrize("steps", [5, 6, 7, 10, 15, 20])
def test_linspace_skip_zero_is_diffusers_multistep_linspace(steps):
    diffusers = pytest.importorskip("diffusers")
    ours = DiscreteVP.make("scaled_linear").timesteps(steps, "linspace_skip_zero").tolist()
    for scheduler in (diffusers.DPMSolverMultistepScheduler(timestep_spacing="linspace"),
                      diffusers.UniPCMultistepScheduler(timestep_spacing="linspace"),
                      diffusers.DPMSolverSinglestepScheduler()):
        scheduler.set_timesteps(steps)
        assert scheduler.timesteps.tolist() == ours, type(scheduler).__name__


def test_sigma_time_round_trips():
    schedule = DiscreteVP.make("linear")
    t = torch.tensor([0.0, 10.5, 500.25, 999.0], dtype=torch.float64)
    torch.testing.assert_close(schedule.sigma_to_t(schedule.t_to_sigma(t)), t, rtol=0, atol=1e-9)
    vp = ContinuousVP()
    tc = torch.tensor([1e-3, 0.3, 1.0], dtype=torch.float64)
    torch.testing.assert_close(vp.sigma_to_t(vp.t_to_sigma(tc)), tc, rtol=1e-10, atol=1e-12)
    # lambda = log(alpha / sigma_vp) from the continuous formula
    alpha = vp.log_alpha(tc).exp()
    torch.testing.assert_close(lambda_of(vp.t_to_sigma(tc)), (alpha / (1 - alpha**2).sqrt()).log())


def test_sigma_spacings():
    k = karras_sigmas(10, 0.002, 80.0)
    assert k[0].item() == pytest.approx(80.0) and k[-2].item() == pytest.approx(0.002) and k[-1] == 0
    steps = (k[:-1] ** (1 / 7)).diff()
    torch.testing.assert_close(steps, steps.mean().expand_as(steps))
    lg = logsnr_sigmas(10, 0.01, 10.0)
    torch.testing.assert_close(lambda_of(lg[:-1]).diff(), torch.full((9,), math.log(1000) / 9, dtype=torch.float64))
    vp = ContinuousVP()
    q = time_sigmas(5, vp, 1.0, 1e-3, "quadratic")
    t = vp.sigma_to_t(q[:-1])
    torch.testing.assert_close(t, 1e-3 + (1 - torch.linspace(0, 1, 5, dtype=torch.float64)) ** 2 * (1 - 1e-3))


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture.random(d=4, k=3, seed=1)


def test_prediction_wrappers_reproduce_the_denoiser(mixture):
    """Networks that predict eps, v, x0 or flow velocity exactly all wrap into the same D."""
    schedule = DiscreteVP.make("linear")
    exact = mixture.denoiser

    def vp_net(kind):
        def net(x_vp, t, cond):
            sigma = schedule.t_to_sigma(t).reshape(-1, 1)
            alpha = (1 + sigma**2).rsqrt()
            x = x_vp / alpha
            x0 = exact(x, sigma.reshape(-1))
            eps = (x - x0) / sigma
            return {"eps": eps, "x0": x0, "v": alpha * eps - sigma * alpha * x0}[kind]
        return net

    def flow_net(x_t, t, cond):
        t = t.reshape(-1, 1)
        sigma = t / (1 - t)
        x = x_t / (1 - t)
        x0 = exact(x, sigma.reshape(-1))
        # x_t = (1 - t) x0 + t noise, v = noise - x0 = (x_t - x0) / t
        return (x_t - x0) / t

    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    sigma = schedule.t_to_sigma(torch.tensor([400.0] * 5))
    expected = exact(x, sigma)
    for kind in ("eps", "v", "x0"):
        wrapped = VPDenoiser(vp_net(kind), kind, schedule.sigma_to_t)
        torch.testing.assert_close(wrapped(x, sigma), expected, msg=kind)
    torch.testing.assert_close(FlowDenoiser(flow_net)(x, sigma), expected)


def test_edm_preconditioning_formula():
    net = lambda x, c_noise, cond: torch.ones_like(x) * c_noise.reshape(-1, 1)  # noqa: E731
    d = EDMDenoiser(net, sigma_data=0.5)
    x = torch.full((1, 2), 2.0, dtype=torch.float64)
    s = 1.5
    expected = 0.25 / (s**2 + 0.25) * 2.0 + s * 0.5 / math.sqrt(s**2 + 0.25) * math.log(s) / 4
    assert d(x, torch.tensor([s], dtype=torch.float64))[0, 0].item() == pytest.approx(expected)


def test_classifier_free_guidance():
    base = lambda x, sigma, cond: x * 0 + cond  # noqa: E731
    x = torch.zeros(3, 2)
    cond, uncond = torch.full((3, 2), 2.0), torch.full((3, 2), 1.0)
    cfg = ClassifierFreeGuidance(base, scale=3.0, uncond=uncond)
    torch.testing.assert_close(cfg(x, torch.tensor(1.0), cond), torch.full((3, 2), 1.0 + 3.0 * 1.0))
    assert torch.equal(ClassifierFreeGuidance(base, 1.0, uncond)(x, torch.tensor(1.0), cond), cond)


def test_dynamic_thresholding():
    base = lambda x, sigma, cond: x  # noqa: E731
    x = torch.tensor([[0.5, -3.0, 2.0, 0.1], [0.2, 0.3, -0.4, 0.1]])
    out = DynamicThresholding(base, ratio=1.0, max_value=1.0)(x, torch.tensor(1.0))
    torch.testing.assert_close(out[0], x[0].clamp(-3, 3) / 3)  # s = max |x0| = 3
    torch.testing.assert_close(out[1], x[1])  # s clamps at max_value: unchanged
