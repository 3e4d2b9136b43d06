"""Exact denoisers and probability-flow endpoints for Gaussian and Gaussian-mixture data (VE space)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp


@dataclass
class GaussianMixture:
    """Data x0 ~ sum_k w_k N(mu_k, C_k); noisy x = x0 + sigma z has covariances C_k + sigma^2 I."""

    weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, d)
    covs: torch.Tensor  # (K, d, d)

    @classmethod
    def random(cls, d: int = 16, k: int = 6, seed: int = 0, spread: float = 100.0) -> GaussianMixture:
        rng = np.random.default_rng(seed)
        means = rng.normal(scale=1.5, size=(k, d))
        covs = []
        for _ in range(k):
            q, _ = np.linalg.qr(rng.normal(size=(d, d)))
            eig = np.geomspace(0.01, 0.01 * spread, d) * rng.uniform(0.5, 1.5)  # eigenvalues span `spread`
            covs.append(q @ np.diag(eig) @ q.T)
        weights = rng.dirichlet(np.full(k, 5.0))
        as_t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
        return cls(as_t(weights), as_t(means), as_t(np.stack(covs)))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, d) data samples and their component labels."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)
        z = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        return self.means[labels] + torch.einsum("nij,nj->ni", chol[labels], z), labels

    def _posterior(self, x: torch.Tensor, sigma: torch.Tensor):
        """Responsibilities (N, K) and per-component denoised means (N, K, d) at noise level sigma."""
        d = self.dim
        sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(x.shape[0])
        eye = torch.eye(d, dtype=x.dtype)
        diff = x[:, None, :] - self.means[None]  # (N, K, d)
        if bool((sigma == sigma[0]).all()):  # one noise level: K factorizations, not N x K
            chol = torch.linalg.cholesky(self.covs + sigma[0] ** 2 * eye)  # (K, d, d)
            inverse = torch.cholesky_inverse(chol)  # (K, d, d)
            solved = torch.einsum("kij,nkj->nki", inverse, diff)
            logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)[None]  # (1, K)
        else:
            total = self.covs[None] + (sigma**2)[:, None, None, None] * eye  # (N, K, d, d)
            chol = torch.linalg.cholesky(total)
            solved = torch.cholesky_solve(diff[..., None], chol)[..., 0]  # (N, K, d) = total^-1 diff
            logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_p = torch.log(self.weights)[None] - 0.5 * (diff * solved).sum(-1) - 0.5 * logdet
        resp = torch.softmax(log_p, dim=1)  # (N, K)
        means = self.means[None] + torch.einsum("kij,nkj->nki", self.covs, solved)  # mu + C total^-1 diff
        return resp, means

    def denoiser(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        """Exact E[x0 | x_sigma = x]: the responsibility-weighted component posterior means."""
        resp, means = self._posterior(x.double(), sigma)
        return (resp[..., None] * means).sum(1).to(x.dtype)

    def component_of(self, x0: torch.Tensor) -> torch.Tensor:
        """Most likely component of clean points (for mode-flip counting)."""
        resp, _ = self._posterior(x0.double(), torch.tensor(1e-4, dtype=torch.float64))
        return resp.argmax(1)

    def ode_solution(self, x: torch.Tensor, sigma_from: float, sigma_to: float, rtol: float = 1e-10) -> torch.Tensor:
        """High-accuracy probability-flow ODE solve dx/dsigma = (x - D) / sigma (DOP853, float64).

        Integrated in u = log sigma, where the flow is smooth: dx/du = x - D(x, e^u)."""
        n, d = x.shape

        def rhs(u, flat):
            y = torch.from_numpy(flat.reshape(n, d))
            return (y - self.denoiser(y, torch.tensor(np.exp(u), dtype=torch.float64))).numpy().reshape(-1)

        sol = solve_ivp(rhs, (np.log(sigma_from), np.log(sigma_to)), x.double().numpy().reshape(-1),
                        method="DOP853", rtol=rtol, atol=rtol)
        return torch.from_numpy(sol.y[:, -1].reshape(n, d))

    def reference_endpoint(self, x_T: torch.Tensor, sigma_max: float, sigma_min: float) -> torch.Tensor:
        """The exact flow from sigma_max to sigma_min, then D(., sigma_min): what every sampler's
        final step to sigma = 0 (x = D) approximates."""
        x = self.ode_solution(x_T, sigma_max, sigma_min)
        return self.denoiser(x, torch.tensor(sigma_min, dtype=torch.float64))


@dataclass
class Gaussian:
    """x0 ~ N(mu, diag(lam)) (coordinates in its eigenbasis): exact denoiser and closed-form PF-ODE flow."""

    mean: torch.Tensor  # (d,)
    variances: torch.Tensor  # (d,)

    def denoiser(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1)
        return self.mean + self.variances / (self.variances + s**2) * (x - self.mean)

    def flow(self, x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
        """Exact PF-ODE map: (x - mu) scales by sqrt((lam + sigma_to^2) / (lam + sigma_from^2))."""
        scale = ((self.variances + sigma_to**2) / (self.variances + sigma_from**2)).sqrt()
        return self.mean + scale * (x - self.mean)

    def reference_endpoint(self, x_T: torch.Tensor, sigma_max: float, sigma_min: float) -> torch.Tensor:
        x = self.flow(x_T, sigma_max, sigma_min)
        return self.denoiser(x, torch.tensor(sigma_min, dtype=torch.float64))
