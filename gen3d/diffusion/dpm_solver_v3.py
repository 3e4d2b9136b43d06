"""DPM-Solver-v3 (Zheng et al. 2023, "Improved Diffusion ODE Solver with Empirical Model
Statistics"): the statistics l, s, b measured from a model on calibration trajectories, and the
multistep predictor-corrector sampler that uses them.

In VE coordinates (x = x_vp / alpha, lambda = -log sigma) the probability-flow ODE is
dx/dlambda = -(x - D). DPM-Solver-v3 rewrites it with per-dimension statistics l, s, b as

    dx/dlambda = -l x - f,   f = (1 - l) x - D            (f is the paper's N_theta / alpha)
    f' ~= s f + b  along trajectories, so  g = e^{-S} f - B  is nearly constant,

with L = int l, S = int s, B = int e^{-S} b. The exact solution over a step s -> t is

    x_t = e^{L_s - L_t} x_s - e^{-L_t - S_s} (I_t - I_s) g_s - e^{-L_t} (C_t - C_s - B_s (I_t - I_s))
          - sum_k e^{L_s - L_t} E_k g^(k),    I = int e^{L+S},  C = int e^{L+S} B,
          E_k = int_s^t e^{(L+S) - (L+S)_s} (lambda - lambda_s)^k / k!,

and the derivatives g^(k) come from earlier (predictor) or the new (corrector) evaluations.
The optimal statistics (paper, Sec. 3.2): l = E[diag dD/dx] complement, l = 1 - E[diag(dD/dx)];
s, b = the per-dimension least-squares fit of f' against f. With l = 1, s = b = 0 ("degenerate")
f = -D and the sampler is DPM-Solver++ (order 1: DDIM).

Integrals are computed on the statistics grid (with the step lambdas inserted) by integrating
w e^a exactly for a and w linear on each interval, so degenerate statistics reproduce DDIM to
rounding error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from gen3d.diffusion.samplers_basic import call, report
from gen3d.diffusion.samplers_multistep import _order_now, sample_dpmpp_multistep

FORMAT_VERSION = 1


@dataclass
class ModelStatistics:
    """Empirical model statistics l, s, b of DPM-Solver-v3 on an ascending lambda grid."""

    lambdas: torch.Tensor  # (K + 1,) ascending, lambda = -log sigma
    l: torch.Tensor  # (K + 1, *sample_shape)
    s: torch.Tensor  # (K + 1, *sample_shape)
    b: torch.Tensor  # (K + 1, *sample_shape)
    info: dict = field(default_factory=dict)

    @classmethod
    def degenerate(cls, sample_shape, sigma_min: float, sigma_max: float, points: int = 64) -> ModelStatistics:
        """l = 1, s = b = 0: the sampler reduces to DPM-Solver++ (paper, Appendix A.2)."""
        lambdas = torch.linspace(-math.log(sigma_max), -math.log(sigma_min), points + 1, dtype=torch.float64)
        shape = (points + 1, *sample_shape)
        return cls(lambdas, torch.ones(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64),
                   torch.zeros(shape, dtype=torch.float64), {"kind": "degenerate"})

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.l.shape[1:])

    def save(self, path: str | Path) -> None:
        """Write `<path>.safetensors` (lambdas, l, s, b) and `<path>.json` (format and provenance)."""
        path = Path(path)
        tensors = {name: getattr(self, name).double().contiguous() for name in ("lambdas", "l", "s", "b")}
        save_file(tensors, str(path.with_suffix(".safetensors")))
        meta = {"format": "gen3d.dpm_solver_v3.statistics", "format_version": FORMAT_VERSION, **self.info}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ModelStatistics:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        if meta.get("format") != "gen3d.dpm_solver_v3.statistics" or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path.with_suffix('.json')} is not a gen3d DPM-Solver-v3 statistics file "
                             f"(format {meta.get('format')!r}, version {meta.get('format_version')!r}; "
                             f"expected version {FORMAT_VERSION})")
        tensors = load_file(str(path.with_suffix(".safetensors")))
        info = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
        return cls(tensors["lambdas"], tensors["l"], tensors["s"], tensors["b"], info)


# ---------------------------------------------------------------- integrals


def _phi(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int_0^1 e^{delta u} du and int_0^1 u e^{delta u} du, with series near delta = 0."""
    small = np.abs(delta) < 1e-4
    safe = np.where(small, 1.0, delta)
    phi1 = np.where(small, 1 + delta / 2 + delta**2 / 6, np.expm1(safe) / safe)
    phi2 = np.where(small, 0.5 + delta / 3 + delta**2 / 8, (np.exp(safe) * (safe - 1) + 1) / safe**2)
    return phi1, phi2


def _exp_integral(a: np.ndarray, x: np.ndarray, w: np.ndarray, cumulative: bool = True) -> np.ndarray:
    """int w e^a dx along axis 0 (from x[0]), exact when a and w are linear on each interval."""
    dx = (x[1:] - x[:-1]).reshape(-1, *([1] * (a.ndim - 1)))
    phi1, phi2 = _phi(a[1:] - a[:-1])
    pieces = dx * np.exp(a[:-1]) * (w[:-1] * phi1 + (w[1:] - w[:-1]) * phi2)
    if not cumulative:
        return pieces.sum(0)
    return np.concatenate([np.zeros_like(pieces[:1]), np.cumsum(pieces, axis=0)])


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cumulative int y dx (exact for piecewise-linear y)."""
    dx = (x[1:] - x[:-1]).reshape(-1, *([1] * (y.ndim - 1)))
    return np.concatenate([np.zeros_like(y[:1]), np.cumsum(0.5 * dx * (y[1:] + y[:-1]), axis=0)])


class _Tables:
    """l, L, S, B, I, C on the statistics grid with the sampling lambdas inserted (float64, flat dims)."""

    def __init__(self, stats: ModelStatistics, step_lambdas: np.ndarray):
        grid = stats.lambdas.double().numpy()
        self.lam = np.unique(np.concatenate([grid, step_lambdas]))  # (U,)
        flat = lambda t: t.double().reshape(t.shape[0], -1).numpy()  # noqa: E731
        interp = lambda v: np.stack([np.interp(self.lam, grid, c) for c in v.T], axis=1)  # noqa: E731
        self.l, s, b = interp(flat(stats.l)), interp(flat(stats.s)), interp(flat(stats.b))  # (U, D)
        self.L, self.S = _trapezoid(self.l, self.lam), _trapezoid(s, self.lam)
        self.LS = self.L + self.S  # the exponent of I, C and the high-order integrals
        self.B = _exp_integral(-self.S, self.lam, b)
        self.I = _exp_integral(self.LS, self.lam, np.ones_like(s))
        self.C = _exp_integral(self.LS, self.lam, self.B)
        self.index = {float(v): int(np.searchsorted(self.lam, v)) for v in step_lambdas}
        self._high: dict = {}

    def high_order(self, i_s: int, i_t: int, k: int) -> np.ndarray:
        """E_k = int_s^t e^{(L+S) - (L+S)_s} (lambda - lambda_s)^k / k!, by 6-point Gauss-Legendre on
        each grid interval with L+S linear there (cached)."""
        key = (i_s, i_t, k)
        if key not in self._high:
            a = self.LS[i_s:i_t + 1] - self.LS[i_s]  # (P + 1, D)
            lam = self.lam[i_s:i_t + 1] - self.lam[i_s]  # (P + 1,)
            nodes, weights = np.polynomial.legendre.leggauss(6)
            u, weights = (nodes + 1) / 2, weights / 2  # on [0, 1]
            width = (lam[1:] - lam[:-1])[:, None]  # (P, 1)
            at = lam[:-1, None] + width * u[None]  # (P, Q) lambda - lambda_s at the nodes
            exponent = a[:-1, None] + (a[1:] - a[:-1])[:, None] * u[None, :, None]  # (P, Q, D)
            integrand = np.exp(exponent) * (at**k / math.factorial(k))[..., None]
            self._high[key] = (width[..., None] * weights[None, :, None] * integrand).sum((0, 1))
        return self._high[key]


def _taylor_derivatives(deltas: list[float], differences: list[torch.Tensor]) -> list[torch.Tensor]:
    """g^(1..n) at the origin from g_j - g_0 = sum_k deltas_j^k / k! g^(k) (a Vandermonde solve)."""
    n = len(deltas)
    matrix = np.array([[d**k / math.factorial(k) for k in range(1, n + 1)] for d in deltas])
    inverse = np.linalg.inv(matrix)  # (n, n)
    return [sum(float(inverse[k, j]) * differences[j] for j in range(n)) for k in range(n)]


def _divided_derivatives(lams: list[float], values: list[torch.Tensor]) -> list[torch.Tensor]:
    """Pseudo-order derivatives k! g[lambda_0..lambda_k] (Newton divided differences), k = 1..n."""
    table = [list(values)]
    for k in range(1, len(values)):
        prev = table[-1]
        table.append([(prev[j] - prev[j + 1]) / (lams[j] - lams[j + k]) for j in range(len(prev) - 1)])
    return [table[k][0] * math.factorial(k) for k in range(1, len(values))]


def _update(tables: _Tables, points: list, lam_t: float, order: int, like: torch.Tensor,
            pseudo: bool = False) -> torch.Tensor:
    """x at lam_t from points [(lambda, x, f), ...] (the first is the expansion origin s), order <= len(points).

    Derivatives of g at s: the Taylor (Vandermonde) solve, or `pseudo` divided differences."""
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(like.dtype).reshape(like.shape[1:])  # noqa: E731
    lam_s, x_s, _ = points[0]
    i_s, i_t = tables.index[lam_s], tables.index[lam_t]
    L, S, B, I, C = tables.L, tables.S, tables.B, tables.I, tables.C  # noqa: E741

    def g_of(lam_j, f_j):  # g relative to the origin s
        i_j = tables.index[lam_j]
        return as_t(np.exp(S[i_s] - S[i_j])) * f_j - as_t(np.exp(S[i_s]) * (B[i_j] - B[i_s]))

    g = [g_of(lam_j, f_j) for lam_j, _, f_j in points[:order]]
    d_i = I[i_t] - I[i_s]
    x_t = (as_t(np.exp(L[i_s] - L[i_t])) * x_s - as_t(np.exp(-L[i_t] - S[i_s]) * d_i) * g[0]
           - as_t(np.exp(-L[i_t]) * (C[i_t] - C[i_s] - B[i_s] * d_i)))
    if order > 1:
        if pseudo:
            derivatives = _divided_derivatives([lam_j for lam_j, _, _ in points[:order]], g)
        else:
            deltas = [lam_j - lam_s for lam_j, _, _ in points[1:order]]
            derivatives = _taylor_derivatives(deltas, [g_j - g[0] for g_j in g[1:]])
        for k, derivative in enumerate(derivatives, start=1):
            x_t = x_t - as_t(np.exp(L[i_s] - L[i_t]) * tables.high_order(i_s, i_t, k)) * derivative
    return x_t


# ---------------------------------------------------------------- sampler


@torch.no_grad()
def sample_dpm_solver_v3(denoiser, x, sigmas, *, cond=None, callback=None, generator=None,
                         statistics: ModelStatistics | None = None, order: int = 3, corrector: bool = True,
                         lower_order_final: bool = True):
    """DPM-Solver-v3 multistep predictor (order 1-3) with the pseudo-order-raising corrector that
    reuses each new evaluation (the official default: corrector order = predictor order + 1).

    `statistics` from `compute_statistics` (or ModelStatistics.load); ModelStatistics.degenerate
    gives DPM-Solver++. The final step to sigma = 0 is x = D, as in every gen3d sampler.
    """
    if statistics is None:
        raise ValueError("dpm_solver_v3 needs statistics=ModelStatistics (compute_statistics(...) or "
                         "ModelStatistics.load(path); ModelStatistics.degenerate(...) gives DPM-Solver++)")
    if order not in (1, 2, 3):
        raise ValueError("DPM-Solver-v3 order must be 1, 2 or 3")
    if tuple(x.shape[1:]) != statistics.sample_shape:
        raise ValueError(f"statistics are for samples of shape {statistics.sample_shape}, got {tuple(x.shape[1:])}")
    n = len(sigmas) - 1
    lambdas = [float(-math.log(float(s))) for s in sigmas[:-1] if float(s) > 0]
    tables = _Tables(statistics, np.array(lambdas))
    l_at = lambda lam: torch.from_numpy(tables.l[tables.index[lam]]).to(x.dtype).reshape(x.shape[1:])  # noqa: E731
    history: list = []  # (lambda, x, f), newest first
    predictor_order = 0
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        lam = lambdas[i]
        denoised = call(denoiser, x, sigma, cond)
        f = (1 - l_at(lam)) * x - denoised
        if corrector and history:
            c_order = min(predictor_order + 1, len(history) + 1)
            x = _update(tables, [history[0], (lam, None, f), *history[1:]], lam, c_order, x, pseudo=True)
            # keep f (the paper keeps N_theta) and move x: the corrected point's model value
        history.insert(0, (lam, x, f))
        if float(sigma_next) == 0:
            x = (1 - l_at(lam)) * x - f  # D at the (corrected) point
        else:
            predictor_order = _order_now(order, i, len(history), n, lower_order_final)
            x = _update(tables, history, lambdas[i + 1], predictor_order, x)
        report(callback, i, x, sigma, sigma_next, denoised)
        del history[3:]
    return x


# ---------------------------------------------------------------- statistics


def _diagonal_jacobian(denoiser, x, sigma, cond, probes: torch.Tensor | None) -> torch.Tensor:
    """Per-sample diag(dD/dx): exact (one backward pass per dimension) or Hutchinson v * (J^T v)."""
    with torch.enable_grad():
        y = x.detach().requires_grad_(True)
        out = call(denoiser, y, sigma, cond).reshape(x.shape[0], -1)  # (N, D)
        if probes is not None:
            total = torch.zeros_like(out)
            for v in probes:  # v: (N, D) Rademacher
                (grad,) = torch.autograd.grad(out, y, grad_outputs=v, retain_graph=True)
                total += v * grad.reshape(x.shape[0], -1)
            return total / len(probes)
        diag = torch.empty_like(out)
        for j in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[:, j].sum(), y, retain_graph=True)
            diag[:, j] = grad.reshape(x.shape[0], -1)[:, j]
        return diag


def compute_statistics(denoiser, x_T: torch.Tensor, sigma_max: float, sigma_min: float, *, points: int = 200,
                       refine: int = 4, cond=None, hutchinson_probes: int = 0,
                       generator: torch.Generator | None = None, progress: bool = False) -> ModelStatistics:
    """Measure l, s, b (DPM-Solver-v3, Sec. 3.2 and Appendix C.1.1) on `points` + 1 uniform-lambda
    nodes from sigma_max to sigma_min, along the model's own ODE trajectories from the calibration
    starts x_T (N, ...) (DPM-Solver++ 3M with `refine` substeps per node).

    l = 1 - E[diag dD/dx] (exact diagonal by default; `hutchinson_probes` > 0 estimates it with
    that many Rademacher probes, fixed along the trajectory so l stays smooth in lambda).
    s, b: per-dimension least squares of f' on f, f' by central differences along the grid.
    Memory: (points + 1) x N x D values.
    """
    lam_grid = torch.linspace(-math.log(sigma_max), -math.log(sigma_min), points + 1, dtype=torch.float64)
    fine = torch.linspace(float(lam_grid[0]), float(lam_grid[-1]), points * refine + 1, dtype=torch.float64)
    sigmas = torch.cat([torch.exp(-fine), torch.zeros(1, dtype=torch.float64)]).to(x_T.dtype)
    n, dims = x_T.shape[0], x_T[0].numel()
    probes = None
    if hutchinson_probes > 0:
        probes = torch.randint(0, 2, (hutchinson_probes, n, dims), generator=generator).to(x_T.dtype) * 2 - 1
    l_nodes, f_nodes = [], []
    bar = _progress(points + 1, progress)

    def at_node(step):
        i = step["i"]
        if i % refine:
            return
        x_i = at_node.x
        diag = _diagonal_jacobian(denoiser, x_i, step["sigma"], cond, probes)  # (N, D)
        l_i = 1 - diag.mean(0)  # (D,)
        l_nodes.append(l_i)
        f_nodes.append((1 - l_i) * x_i.reshape(n, -1) - step["denoised"].reshape(n, -1))
        bar.update(1)

    def callback(step):
        at_node(step)
        at_node.x = step["x"]

    at_node.x = x_T
    sample_dpmpp_multistep(denoiser, x_T.clone(), sigmas, cond=cond, callback=callback, order=3)
    bar.close()
    f = torch.stack(f_nodes[:points + 1]).double()  # (K + 1, N, D)
    step = float(lam_grid[1] - lam_grid[0])
    f_prime = torch.from_numpy(np.gradient(f.numpy(), step, axis=0, edge_order=2))  # (K + 1, N, D)
    f_mean, fp_mean = f.mean(1), f_prime.mean(1)  # (K + 1, D)
    cov = ((f - f_mean[:, None]) * (f_prime - fp_mean[:, None])).mean(1)
    var = (f - f_mean[:, None]).pow(2).mean(1)
    s = cov / (var + 1e-8 * f.pow(2).mean(1) + 1e-300)  # ridge: s -> 0 where f does not vary
    b = fp_mean - s * f_mean
    shape = (points + 1, *x_T.shape[1:])
    info = {"kind": "measured", "sigma_max": sigma_max, "sigma_min": sigma_min, "points": points,
            "samples": n, "hutchinson_probes": hutchinson_probes}
    return ModelStatistics(lam_grid, torch.stack(l_nodes[:points + 1]).double().reshape(shape),
                           s.reshape(shape), b.reshape(shape), info)


def _progress(total: int, enabled: bool):
    if enabled:
        from tqdm import tqdm

        return tqdm(total=total, desc="DPM-Solver-v3 statistics", unit="node")
    return _NoBar()


class _NoBar:
    def update(self, _count: int) -> None:
        pass

    def close(self) -> None:
        pass
