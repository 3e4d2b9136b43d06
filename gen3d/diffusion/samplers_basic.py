"""One- and two-evaluation samplers: Euler/DDIM, Heun, DDPM ancestral, rectified flow, SDEs.

Every sampler has the signature
    sampler(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, **options) -> x
with x in the denoiser's VE space at sigmas[0], sigmas descending to 0, each random draw from
`generator`, and callback({"i", "x", "sigma", "sigma_next", "denoised"}) after each step.
"""

from __future__ import annotations

import torch

from gen3d.diffusion.schedules import flow_t


def call(denoiser, x: torch.Tensor, sigma: torch.Tensor, cond) -> torch.Tensor:
    """D(x, sigma) with sigma as a per-sample tensor of x's dtype."""
    return denoiser(x, sigma.to(x.dtype).expand(x.shape[0]), cond)


def report(callback, i: int, x, sigma, sigma_next, denoised) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})


def noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


@torch.no_grad()
def sample_euler(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Euler on the probability-flow ODE dx/dsigma = (x - D) / sigma (Karras et al. 2022, Alg. 1
    without the second-order step). In VE coordinates this is DDIM (eta = 0), DPM-Solver-1 and
    DPM-Solver++(1) exactly: x' = D + (sigma' / sigma) (x - D)."""
    for i in range(len(sigmas) - 1):
        denoised = call(denoiser, x, sigmas[i], cond)
        x = denoised + (sigmas[i + 1] / sigmas[i]) * (x - denoised)
        report(callback, i, x, sigmas[i], sigmas[i + 1], denoised)
    return x


@torch.no_grad()
def sample_heun(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Heun's second-order method (Karras et al. 2022, Alg. 1, S_churn = 0); Euler on the step to 0."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        d = (x - denoised) / sigma
        x_next = x + (sigma_next - sigma) * d
        if sigma_next > 0:
            d_next = (x_next - call(denoiser, x_next, sigma_next, cond)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_ddim(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, eta: float = 0.0,
                noises: list[torch.Tensor] | None = None):
    """DDIM (Song et al. 2021, eq. 12) with stochasticity eta: eta = 0 is deterministic, eta = 1 is
    DDPM's ancestral posterior sampling. Computed in VP coordinates (alphabar = 1 / (1 + sigma^2)).
    `noises` (one per step) replaces the generator's draws, e.g. for edit-friendly inversion."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        eps = (x - denoised) / sigma
        abar, abar_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        c = eta * ((1 - abar_next) / (1 - abar) * (1 - abar / abar_next)).clamp(min=0).sqrt()
        x_vp = abar_next.sqrt() * denoised + (1 - abar_next - c**2).clamp(min=0).sqrt() * eps
        if eta > 0 and sigma_next > 0:
            z = noises[i] if noises is not None else noise_like(x, generator)
            x_vp = x_vp + c * z
        x = x_vp / abar_next.sqrt()
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_ddpm(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, noises=None):
    """DDPM ancestral sampling (Ho et al. 2020): the posterior q(x_{t-1} | x_t, x_0 = D) at each step."""
    return sample_ddim(denoiser, x, sigmas, cond=cond, callback=callback, generator=generator, eta=1.0,
                       noises=noises)


@torch.no_grad()
def sample_rf_euler(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Euler in rectified-flow time t = sigma / (1 + sigma) on x_t = (1 - t) x (Liu et al. 2023).

    Mathematically equal to sample_euler (both are exact on straight paths); kept as the flow form."""
    for i in range(len(sigmas) - 1):
        t, t_next = flow_t(sigmas[i]), flow_t(sigmas[i + 1])
        x_flow = x * (1 - t)
        denoised = call(denoiser, x, sigmas[i], cond)
        velocity = (x_flow - denoised) / t  # v = noise - x0
        x_flow = x_flow + (t_next - t) * velocity
        x = x_flow / (1 - t_next)
        report(callback, i, x, sigmas[i], sigmas[i + 1], denoised)
    return x


@torch.no_grad()
def sample_rf_heun(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """Heun's method in rectified-flow time (second order in t; Euler on the final step to t = 0)."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        t, t_next = flow_t(sigma), flow_t(sigma_next)
        x_flow = x * (1 - t)
        denoised = call(denoiser, x, sigma, cond)
        velocity = (x_flow - denoised) / t
        x_flow_next = x_flow + (t_next - t) * velocity
        if sigma_next > 0:
            x_next = x_flow_next / (1 - t_next)
            velocity_next = (x_flow_next - call(denoiser, x_next, sigma_next, cond)) / t_next
            x_flow_next = x_flow + (t_next - t) * (velocity + velocity_next) / 2
        x = x_flow_next / (1 - t_next)
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_interpolant_sde(denoiser, x, sigmas, *, cond=None, callback=None, generator=None,
                           diffusion: float = 1.0):
    """Euler-Maruyama on the marginal-preserving SDE family of the probability flow (Karras et al.
    2022 eq. 6; the stochastic-interpolant view of Albergo et al. 2023): with beta = diffusion / sigma,
        dx = (1 + diffusion) (x - D) / sigma dsigma + sqrt(2 diffusion sigma |dsigma|) dW.
    diffusion = 0 is the probability-flow ODE (Euler); any diffusion >= 0 keeps the marginals."""
    if diffusion < 0:
        raise ValueError("the diffusion coefficient must be >= 0")
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        if sigma_next == 0:
            x = denoised
        else:
            step = sigma_next - sigma  # < 0
            x = x + (1 + diffusion) * (x - denoised) / sigma * step
            if diffusion > 0:
                x = x + (2 * diffusion * sigma * (-step)).sqrt() * noise_like(x, generator)
        report(callback, i, x, sigma, sigma_next, denoised)
    return x
