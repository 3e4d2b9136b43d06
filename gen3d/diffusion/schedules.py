"""Noise schedules and step spacings, all expressed through the VE noise level sigma.

Every model is sampled in VE coordinates (EDM, Karras et al. 2022): x = x_vp / alpha, sigma =
sigma_vp / alpha, so that x_sigma = x_0 + sigma * noise and lambda = log(alpha / sigma) = -log sigma.
A VP model at time t has sigma(t) = sqrt((1 - alphabar_t) / alphabar_t); rectified flow
(x_t = (1 - t) x_0 + t noise) has sigma(t) = t / (1 - t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def vp_betas(kind: str = "linear", num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2
             ) -> torch.Tensor:
    """(T,) float64 betas of a discrete VP schedule: "linear" (DDPM, Direct3D), "scaled_linear" (Stable
    Diffusion: linear in sqrt(beta), 0.00085..0.012 by default there) or "cosine" (Nichol & Dhariwal 2021)."""
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
    if kind == "cosine":
        s = 0.008
        t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - f[1:] / f[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown beta schedule {kind!r}: linear, scaled_linear or cosine")


@dataclass
class DiscreteVP:
    """A discrete-time VP schedule (DDPM / Stable Diffusion / Direct3D): alphabar_t for t = 0..T-1."""

    alphas_cumprod: torch.Tensor  # (T,) float64

    @classmethod
    def make(cls, kind: str = "linear", num_steps: int = 1000, beta_start: float | None = None,
             beta_end: float | None = None) -> DiscreteVP:
        defaults = {"linear": (1e-4, 2e-2), "scaled_linear": (0.00085, 0.012), "cosine": (0.0, 0.0)}
        start, end = defaults.get(kind, (1e-4, 2e-2))
        betas = vp_betas(kind, num_steps, beta_start if beta_start is not None else start,
                         beta_end if beta_end is not None else end)
        return cls(torch.cumprod(1 - betas, dim=0))

    @property
    def num_steps(self) -> int:
        return len(self.alphas_cumprod)

    @property
    def sigmas(self) -> torch.Tensor:
        """(T,) VE sigma at each discrete time, increasing with t."""
        return ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """sigma at fractional times t in [0, T-1], interpolating log sigma (k-diffusion's convention)."""
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.num_steps - 1)
        low = t.floor().long()
        high = (low + 1).clamp(max=self.num_steps - 1)
        w = t - low
        log_sigmas = self.sigmas.log()
        return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional time of a sigma (inverse of t_to_sigma), clamped to the schedule's range."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        log_sigmas = self.sigmas.log()
        log_sigma = sigma.clamp(min=1e-30).log()
        index = torch.searchsorted(log_sigmas, log_sigma.reshape(-1)).clamp(1, self.num_steps - 1)
        lo, hi = log_sigmas[index - 1], log_sigmas[index]
        w = ((log_sigma.reshape(-1) - lo) / (hi - lo)).clamp(0, 1)
        return (index - 1 + w).reshape(sigma.shape)

    def timesteps(self, num: int, spacing: str = "trailing") -> torch.Tensor:
        """Integer timesteps, descending, as diffusers' `timestep_spacing` names them.

        "linspace": round(linspace(0, T-1, num)) (DDIM's); "linspace_skip_zero": round(linspace(0, T-1,
        num + 1)) without its 0 (what diffusers' multistep schedulers — DPM-Solver, UniPC, DEIS — call
        "linspace"); "leading": arange(num) * (T // num) (+ 0); "trailing": round(arange(T, 0, -T/num)) - 1.
        Halves round to even, as numpy's round does.
        """
        T = self.num_steps
        if spacing == "linspace":
            steps = torch.linspace(0, T - 1, num, dtype=torch.float64).round().long()
        elif spacing == "linspace_skip_zero":
            steps = torch.linspace(0, T - 1, num + 1, dtype=torch.float64).round().long()[1:]
        elif spacing == "leading":
            steps = torch.arange(num, dtype=torch.int64) * (T // num)
        elif spacing == "trailing":
            steps = (torch.arange(T, 0, -T / num, dtype=torch.float64).round() - 1).long().flip(0)
        else:
            raise ValueError(f"unknown timestep spacing {spacing!r}: linspace, linspace_skip_zero, leading or trailing")
        return steps.flip(0)

    def sigmas_for_timesteps(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Descending sigmas at integer timesteps, with a final 0 appended."""
        return torch.cat([self.sigmas[timesteps.long()], torch.zeros(1, dtype=torch.float64)])


@dataclass
class ContinuousVP:
    """Continuous-time VP (Song et al. 2021), linear beta(t) = beta_0 + t (beta_1 - beta_0), t in [0, 1]."""

    beta_0: float = 0.1
    beta_1: float = 20.0

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        return -0.25 * t**2 * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.expm1(-2 * self.log_alpha(t)).sqrt()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Invert log alpha(t) = -log(1 + sigma^2) / 2 (a quadratic in t)."""
        log_alpha = -0.5 * torch.log1p(torch.as_tensor(sigma, dtype=torch.float64) ** 2)
        a, b = 0.25 * (self.beta_1 - self.beta_0), 0.5 * self.beta_0
        return (-b + (b * b - 4 * a * log_alpha).sqrt()) / (2 * a)


def alpha_sigma_vp(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma_vp) of a VP model at VE noise level sigma: alpha = 1 / sqrt(1 + sigma^2)."""
    alpha = torch.rsqrt(1 + sigma**2)
    return alpha, sigma * alpha


def flow_t(sigma: torch.Tensor) -> torch.Tensor:
    """Rectified-flow time of a VE sigma: t = sigma / (1 + sigma)."""
    return sigma / (1 + sigma)


def lambda_of(sigma: torch.Tensor) -> torch.Tensor:
    """Half log-SNR, lambda = log(alpha / sigma) = -log sigma_VE."""
    return -torch.as_tensor(sigma).log()


# ---------------------------------------------------------------- spacings of sigmas (descending, final 0)


def karras_sigmas(num: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) eq. 5: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) - max^(1/rho)))^rho, then 0."""
    ramp = torch.linspace(0, 1, num, dtype=torch.float64)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return torch.cat([(inv_max + ramp * (inv_min - inv_max)) ** rho, torch.zeros(1, dtype=torch.float64)])


def logsnr_sigmas(num: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Uniform in lambda = -log sigma (DPM-Solver's "logSNR" spacing), then 0."""
    return torch.cat([torch.linspace(math.log(sigma_max), math.log(sigma_min), num, dtype=torch.float64).exp(),
                      torch.zeros(1, dtype=torch.float64)])


def time_sigmas(num: int, schedule, t_start: float, t_end: float, kind: str = "uniform") -> torch.Tensor:
    """Uniform ("uniform") or quadratic ("quadratic", DDIM's) in the schedule's time, mapped to sigmas, then 0."""
    ramp = torch.linspace(0, 1, num, dtype=torch.float64)
    if kind == "uniform":
        t = t_start + ramp * (t_end - t_start)
    elif kind == "quadratic":
        t = t_end + (1 - ramp) ** 2 * (t_start - t_end)
    else:
        raise ValueError(f"unknown time spacing {kind!r}: uniform or quadratic")
    return torch.cat([schedule.t_to_sigma(t), torch.zeros(1, dtype=torch.float64)])
