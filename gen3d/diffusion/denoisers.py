"""The one denoiser contract, D(x, sigma, cond) -> x0 in VE coordinates, and wrappers into it.

A network trained to predict eps, v, x0 or a flow velocity, in discrete or continuous time, is
wrapped once; samplers, inversion and editing only ever see D (k-diffusion / EDM style).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gen3d.diffusion.schedules import alpha_sigma_vp, flow_t

Denoiser = Callable[..., torch.Tensor]  # D(x, sigma, cond=None) -> x0; x (B, ...), sigma scalar or (B,)


def _per_sample(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """sigma broadcast to x's shape (B, 1, 1, ...)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma.reshape(-1, *([1] * (x.dim() - 1)))


class VPDenoiser:
    """A VP network net(x_vp, t, cond) predicting "eps", "v" or "x0" at time t = time_of(sigma).

    x_vp = alpha x with alpha = 1 / sqrt(1 + sigma^2). For a discrete schedule pass
    `time_of=schedule.sigma_to_t` (fractional timesteps, k-diffusion's convention; rounded,
    `lambda s: schedule.sigma_to_t(s).round()`, it reproduces diffusers' use_karras_sigmas
    schedulers), for a continuous one its own sigma_to_t.
    """

    def __init__(self, net: Callable, prediction: str, time_of: Callable[[torch.Tensor], torch.Tensor]):
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(f"prediction must be eps, v or x0, not {prediction!r}")
        self.net, self.prediction, self.time_of = net, prediction, time_of

    def __call__(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        s = _per_sample(sigma, x)  # (B, 1, ...)
        alpha, sigma_vp = alpha_sigma_vp(s)
        x_vp = x * alpha
        t = self.time_of(s.reshape(-1).double()).to(x.dtype)
        out = self.net(x_vp, t, cond)
        if self.prediction == "eps":
            return x - s * out  # x0 = (x_vp - sigma_vp eps) / alpha
        if self.prediction == "v":
            return alpha * x_vp - sigma_vp * out  # v = alpha eps - sigma_vp x0
        return out


class FlowDenoiser:
    """A rectified-flow network net(x_t, t, cond) predicting v = noise - x0 on x_t = (1 - t) x0 + t noise."""

    def __init__(self, net: Callable):
        self.net = net

    def __call__(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        s = _per_sample(sigma, x)
        t = flow_t(s)  # (B, 1, ...)
        x_t = x * (1 - t)  # x_flow = alpha_flow x_VE with alpha_flow = 1 - t
        v = self.net(x_t, t.reshape(-1), cond)
        return x_t - t * v


class EDMDenoiser:
    """Karras et al. (2022) preconditioning: D = c_skip x + c_out F(c_in x, c_noise)."""

    def __init__(self, net: Callable, sigma_data: float = 0.5):
        self.net, self.sigma_data = net, sigma_data

    def __call__(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        s = _per_sample(sigma, x)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (s**2 + sd2)
        c_out = s * self.sigma_data / (s**2 + sd2).sqrt()
        c_in = 1 / (s**2 + sd2).sqrt()
        return c_skip * x + c_out * self.net(c_in * x, s.reshape(-1).log() / 4, cond)


class ClassifierFreeGuidance:
    """D_w = D(x, uncond) + w (D(x, cond) - D(x, uncond)) (Ho & Salimans 2022), in one batched call."""

    def __init__(self, denoiser: Denoiser, scale: float, uncond=None):
        self.denoiser, self.scale, self.uncond = denoiser, scale, uncond

    def __call__(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        if self.scale == 1.0:
            return self.denoiser(x, sigma, cond)
        both = torch.cat([x, x])
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma = torch.cat([sigma.expand(x.shape[0])] * 2)
        conds = _concat_conditions(self.uncond, cond, x.shape[0])
        uncond_out, cond_out = self.denoiser(both, sigma, conds).chunk(2)
        return uncond_out + self.scale * (cond_out - uncond_out)


def _concat_conditions(uncond, cond, batch: int):
    if cond is None and uncond is None:
        return None
    if isinstance(cond, dict):
        return {k: torch.cat([uncond[k], cond[k]]) for k in cond}
    return torch.cat([uncond, cond])


class DynamicThresholding:
    """Imagen's dynamic thresholding (Saharia et al. 2022): clip x0 to the per-sample `ratio`
    quantile s of |x0| (s >= max_value) and divide by s / max_value."""

    def __init__(self, denoiser: Denoiser, ratio: float = 0.995, max_value: float = 1.0):
        self.denoiser, self.ratio, self.max_value = denoiser, ratio, max_value

    def __call__(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        x0 = self.denoiser(x, sigma, cond)
        flat = x0.reshape(x0.shape[0], -1).abs()
        s = torch.quantile(flat, self.ratio, dim=1).clamp(min=self.max_value)
        s = s.reshape(-1, *([1] * (x0.dim() - 1)))
        return x0.clamp(-s, s) * (self.max_value / s)
