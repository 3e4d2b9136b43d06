"""Exponential-integrator and multistep samplers: DPM-Solver, DPM-Solver++, UniPC, DEIS, PNDM,
PLMS/iPNDM and the momentum samplers. Same signature as samplers_basic.

In VE coordinates alpha = 1 and lambda = -log sigma, so the exponential-integrator formulas of
the papers reduce to functions of sigma ratios and h = lambda_next - lambda. Every sampler ends
with x = D(x, sigma_last) on the step to sigma = 0.
"""

from __future__ import annotations

import numpy as np
import torch

from gen3d.diffusion.samplers_basic import call, noise_like, report


def _steps(sigmas):
    return len(sigmas) - 1


def _order_now(order: int, i: int, history: int, num_steps: int, lower_order_final: bool) -> int:
    """Multistep order at step i: limited by the history, and lowered near the end for short runs
    (diffusers' lower_order_final: at most 2 on the second-to-last step when fewer than 15 steps)."""
    k = min(order, history)
    if lower_order_final and num_steps < 15 and i == num_steps - 2:
        k = min(k, 2)
    return max(k, 1)


# ---------------------------------------------------------------- DPM-Solver (noise prediction)


@torch.no_grad()
def sample_dpm_solver(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, order: int = 2,
                      method: str = "multistep", lower_order_final: bool = True):
    """DPM-Solver (Lu et al. 2022a) with noise prediction eps = (x - D) / sigma, orders 1-3.

    method="singlestep": DPM-Solver-k with k evaluations per step (intermediate points at
    r = 1/2, or 1/3 and 2/3, of the step in lambda); "multistep": one evaluation per step, earlier
    evaluations reused (DPM-Solver-2M/3M in noise form).
    """
    if order not in (1, 2, 3):
        raise ValueError("DPM-Solver order must be 1, 2 or 3")
    eps_of = lambda y, s: (y - call(denoiser, y, s, cond)) / s  # noqa: E731
    n = _steps(sigmas)
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (eps, lambda)
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if sigma_next == 0:
            denoised = call(denoiser, x, sigma, cond)
            x = denoised
            report(callback, i, x, sigma, sigma_next, denoised)
            continue
        lam, lam_next = -sigma.log(), -sigma_next.log()
        h = lam_next - lam
        eps0 = eps_of(x, sigma)
        denoised = x - sigma * eps0
        if method == "singlestep":
            x = _dpm_singlestep(eps_of, x, sigma, h, eps0, order)
        else:
            history.append((eps0, lam))
            k = _order_now(order, i, len(history), n, lower_order_final)
            x = _dpm_multistep(x, sigma_next, h, history, k)
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


def _dpm_singlestep(eps_of, x, sigma, h, eps0, order):
    """DPM-Solver-1/2/3 single step (Lu et al. 2022a, Algorithms 1 and 2).

    VE form: sigma_t (e^h - 1) = sigma_s - sigma_t."""
    sigma_t = sigma * torch.exp(-h)
    if order == 1:
        return x - (sigma - sigma_t) * eps0
    if order == 2:
        r1 = 0.5
        sigma_s1 = sigma * torch.exp(-r1 * h)
        u1 = x - (sigma - sigma_s1) * eps0
        d1 = eps_of(u1, sigma_s1) - eps0
        return x - (sigma - sigma_t) * eps0 - (sigma - sigma_t) / (2 * r1) * d1
    r1, r2 = 1 / 3, 2 / 3
    sigma_s1, sigma_s2 = sigma * torch.exp(-r1 * h), sigma * torch.exp(-r2 * h)
    u1 = x - (sigma - sigma_s1) * eps0
    d1 = eps_of(u1, sigma_s1) - eps0
    phi_s2 = torch.expm1(r2 * h)
    u2 = x - (sigma - sigma_s2) * eps0 - sigma_s2 * (r2 / r1) * (phi_s2 / (r2 * h) - 1) * d1
    d2 = eps_of(u2, sigma_s2) - eps0
    phi = torch.expm1(h)
    return x - (sigma - sigma_t) * eps0 - sigma_t / r2 * (phi / h - 1) * d2


def _dpm_multistep(x, sigma_next, h, history, k):
    """Multistep DPM-Solver update in noise form with the k latest evaluations."""
    eps0, lam0 = history[-1]
    phi1 = torch.expm1(h)
    x_next = x - sigma_next * phi1 * eps0
    if k == 2:
        eps1, lam1 = history[-2]
        r0 = (lam0 - lam1) / h
        x_next = x_next - 0.5 * sigma_next * phi1 * (eps0 - eps1) / r0
    elif k == 3:
        (eps1, lam1), (eps2, lam2) = history[-2], history[-3]
        r0, r1 = (lam0 - lam1) / h, (lam1 - lam2) / h
        d1_0, d1_1 = (eps0 - eps1) / r0, (eps1 - eps2) / r1
        d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) / (r0 + r1)
        x_next = x_next - sigma_next * (phi1 / h - 1) * d1 - sigma_next * ((phi1 - h) / h**2 - 0.5) * d2
    return x_next


# ---------------------------------------------------------------- DPM-Solver++ (data prediction)


@torch.no_grad()
def sample_dpmpp_multistep(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, order: int = 3,
                           eta: float = 0.0, lower_order_final: bool = True, noises=None):
    """DPM-Solver++ multistep of order 1-3 (Lu et al. 2022b): 2M (Algorithm 2) and 3M, deterministic
    (eta = 0) or the SDE variant (eta > 0, k-diffusion's dpmpp_3m_sde), in VE form."""
    history: list[torch.Tensor] = []
    steps_h: list[torch.Tensor] = []
    n = _steps(sigmas)
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        history.append(denoised)
        if sigma_next == 0:
            x = denoised
        else:
            h = sigma.log() - sigma_next.log()
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x - torch.expm1(-h_eta) * denoised
            k = _order_now(order, i, len(history), n, lower_order_final)
            phi_2 = torch.expm1(-h_eta) / h_eta + 1
            if k >= 3:
                r0, r1 = steps_h[-1] / h, steps_h[-2] / h
                d1_0 = (history[-1] - history[-2]) / r0
                d1_1 = (history[-2] - history[-3]) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif k == 2 and eta == 0:  # DPM-Solver++(2M)'s update, as the paper's 3M warm-up uses
                r = steps_h[-1] / h
                x = x - torch.expm1(-h) * (history[-1] - history[-2]) / (2 * r)
            elif k == 2:
                r = steps_h[-1] / h
                x = x + phi_2 * (history[-1] - history[-2]) / r
            if eta > 0:
                z = noises[i] if noises is not None else noise_like(x, generator)
                x = x + z * sigma_next * (-torch.expm1(-2 * h * eta)).sqrt()
            steps_h.append(h)
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_dpmpp_sde_2m(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, eta: float = 1.0,
                        noises=None):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b; k-diffusion's dpmpp_2m_sde, midpoint form)."""
    old, h_last = None, None
    for i in range(_steps(sigmas)):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        if sigma_next == 0:
            x = denoised
        else:
            h = sigma.log() - sigma_next.log()
            eta_h = eta * h
            x = (sigma_next / sigma) * torch.exp(-eta_h) * x - torch.expm1(-h - eta_h) * denoised
            if old is not None:
                r = h_last / h
                x = x - 0.5 * torch.expm1(-h - eta_h) * (1 / r) * (denoised - old)
            if eta > 0:
                z = noises[i] if noises is not None else noise_like(x, generator)
                x = x + z * sigma_next * (-torch.expm1(-2 * eta_h)).sqrt()
            h_last = h
        old = denoised
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


@torch.no_grad()
def sample_dpmpp_2s(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, intermediate: str = "lambda"):
    """DPM-Solver++(2S) singlestep (Lu et al. 2022b, Algorithm 1).

    intermediate="lambda": each interval of `sigmas` is one step with its intermediate point
    halfway in lambda (two evaluations a step). intermediate="grid": every other grid point is the
    intermediate point of a step spanning two intervals (r from the grid), so the evaluations equal
    the number of intervals, as diffusers' DPMSolverSinglestepScheduler spends them.
    """
    n = _steps(sigmas)
    i = 0
    while i < n:
        sigma = sigmas[i]
        denoised = call(denoiser, x, sigma, cond)
        use_grid = intermediate == "grid" and i + 2 <= n and sigmas[i + 2] > 0
        if sigmas[i + 1] == 0:
            x, last = denoised, i + 1
        elif intermediate == "grid" and not use_grid:  # a single first-order step
            x, last = (sigmas[i + 1] / sigma) * x - torch.expm1(-(sigma / sigmas[i + 1]).log()) * denoised, i + 1
        else:
            last = i + 2 if use_grid else i + 1
            sigma_next = sigmas[last]
            sigma_mid = sigmas[i + 1] if use_grid else (sigma * sigma_next).sqrt()
            h = sigma.log() - sigma_next.log()
            r = (sigma.log() - sigma_mid.log()) / h
            x_mid = (sigma_mid / sigma) * x - torch.expm1(-r * h) * denoised
            denoised_mid = call(denoiser, x_mid, sigma_mid, cond)
            combined = (1 - 1 / (2 * r)) * denoised + 1 / (2 * r) * denoised_mid
            x = (sigma_next / sigma) * x - torch.expm1(-h) * combined
        report(callback, i, x, sigma, sigmas[last], denoised)
        i = last
    return x


# ---------------------------------------------------------------- UniPC


def _unipc_coefficients(rks: torch.Tensor, hh: torch.Tensor, variant: str, order: int):
    """R (order x order) and b of UniPC (Zhao et al. 2023, Algorithm 2 / the B(h) choices bh1, bh2)."""
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else torch.expm1(hh)
    factorial = 1
    rows, b = [], []
    for i in range(1, order + 1):
        rows.append(rks ** (i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return torch.stack(rows), torch.stack(b), h_phi_1, b_h


@torch.no_grad()
def sample_unipc(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, order: int = 2,
                 variant: str = "bh2", corrector: bool = True, lower_order_final: bool = True):
    """UniPC (Zhao et al. 2023), data prediction: UniP-p predictor plus the UniC corrector, which
    reuses the model evaluation at the new point (so the corrector costs no extra evaluation)."""
    if variant not in ("bh1", "bh2"):
        raise ValueError("UniPC variant must be bh1 or bh2")
    n = _steps(sigmas)
    models: list[torch.Tensor] = []
    lambdas: list[torch.Tensor] = []
    x_prev, k = None, 1
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        lam = -sigma.log()
        if corrector and x_prev is not None:  # correct x with the evaluation just made at it
            x = _unipc_update(x_prev, models, lambdas, lam, sigma, variant, k, model_t=denoised)
        models.append(denoised)
        lambdas.append(lam)
        x_prev = x
        if sigma_next == 0:
            x = denoised
        else:
            k = _order_now(order, i, len(models), n, lower_order_final)
            x = _unipc_update(x, models, lambdas, -sigma_next.log(), sigma_next, variant, k)
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


def _unipc_update(x, models, lambdas, lam_t, sigma_t, variant, k, model_t=None):
    """Predictor (model_t None) or corrector step from the last point of `models` to lambda_t."""
    m0, lam0 = models[-1], lambdas[-1]
    sigma0 = torch.exp(-lam0)
    h = lam_t - lam0
    hh = -h
    rks, d1s = [], []
    for j in range(1, min(k, len(models))):
        rk = (lambdas[-(j + 1)] - lam0) / h
        rks.append(rk)
        d1s.append((models[-(j + 1)] - m0) / rk)
    rks.append(torch.ones((), dtype=h.dtype, device=h.device))
    order = len(rks)
    rows, b, h_phi_1, b_h = _unipc_coefficients(torch.stack(rks), hh, variant, order)
    x_t = (sigma_t / sigma0) * x - h_phi_1 * m0
    half = torch.tensor([0.5], dtype=h.dtype, device=h.device)
    if model_t is None:  # predictor UniP
        if d1s:
            rhos = half if order == 2 else torch.linalg.solve(rows[:-1, :-1], b[:-1])
            x_t = x_t - b_h * sum(r * d for r, d in zip(rhos, d1s))
        return x_t
    rhos = half if order == 1 else torch.linalg.solve(rows, b)
    correction = sum(r * d for r, d in zip(rhos[:-1], d1s)) if d1s else 0
    return x_t - b_h * (correction + rhos[-1] * (model_t - m0))


# ---------------------------------------------------------------- linear multistep in eps form


def _eps_multistep(denoiser, x, sigmas, cond, callback, advance):
    """The loop the eps-history samplers (PLMS, GHVB, DEIS) share: one evaluation per step, eps
    kept newest last, x = D on the step to sigma = 0, else x = advance(i, n, x, sigma, sigma',
    eps_history)."""
    eps_history: list[torch.Tensor] = []
    n = _steps(sigmas)
    for i in range(n):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = call(denoiser, x, sigma, cond)
        if sigma_next == 0:
            x = denoised
        else:
            eps_history.append((x - denoised) / sigma)
            x = advance(i, n, x, sigma, sigma_next, eps_history)
        report(callback, i, x, sigma, sigma_next, denoised)
    return x


AB_COEFFICIENTS = {  # Adams-Bashforth weights on (newest, ..., oldest), uniform steps
    1: [1.0],
    2: [3 / 2, -1 / 2],
    3: [23 / 12, -16 / 12, 5 / 12],
    4: [55 / 24, -59 / 24, 37 / 24, -9 / 24],
}


def ghvb_mix(eps_history: list[torch.Tensor], order: int, beta: float) -> torch.Tensor:
    """GHVB's combination of the latest eps (Wizadwongsa et al. 2024, "Diffusion Sampling with
    Momentum"): Adams-Bashforth of `order` when beta = 1, heavy-ball momentum at order 1."""
    k = min(order, len(eps_history))
    e = eps_history[::-1]  # e[0] newest
    b = beta
    if k == 1:
        return b * e[0]
    if k == 2:
        return ((2 + b) * e[0] - (2 - b) * e[1]) / 2
    if k == 3:
        return ((18 + 5 * b) * e[0] - (24 - 8 * b) * e[1] + (6 - b) * e[2]) / 12
    return ((46 + 9 * b) * e[0] - (78 - 19 * b) * e[1] + (42 - 5 * b) * e[2] - (10 - b) * e[3]) / 24


@torch.no_grad()
def sample_ghvb(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, order: int = 4,
                beta: float = 0.8):
    """Generalized heavy-ball (GHVB) momentum on the DDIM transfer x' = x + (sigma' - sigma) v, with
    v <- (1 - beta) v + mix_order(eps, beta). beta = 1 is PLMS (iPNDM-style lower-order warm-up);
    order = 1 is Polyak heavy ball on DDIM; beta in (0, 1) damps the divergence artifacts of
    high-order solvers at large guidance."""
    velocity: list[torch.Tensor] = []  # the momentum state, empty before the first step

    def advance(i, n, x, sigma, sigma_next, eps_history):
        previous = velocity[0] if velocity else eps_history[-1]  # v_0 = eps_0: DDIM's first step
        velocity[:] = [(1 - beta) * previous + ghvb_mix(eps_history[-order:], order, beta)]
        return x + (sigma_next - sigma) * velocity[0]

    return _eps_multistep(denoiser, x, sigmas, cond, callback, advance)


@torch.no_grad()
def sample_heavy_ball(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, beta: float = 0.8):
    """Polyak heavy-ball momentum on DDIM (Wizadwongsa et al. 2024): GHVB of order 1."""
    return sample_ghvb(denoiser, x, sigmas, cond=cond, callback=callback, generator=generator, order=1, beta=beta)


@torch.no_grad()
def sample_plms(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, order: int = 4):
    """PLMS / iPNDM (Liu et al. 2022; Zhang & Chen 2023): Adams-Bashforth on eps with the DDIM
    transfer, lower-order multistep warm-up (no Runge-Kutta), one evaluation per step."""

    def advance(i, n, x, sigma, sigma_next, eps_history):
        k = min(order, len(eps_history))
        return x + (sigma_next - sigma) * sum(c * e for c, e in zip(AB_COEFFICIENTS[k], eps_history[::-1]))

    return _eps_multistep(denoiser, x, sigmas, cond, callback, advance)


@torch.no_grad()
def sample_pndm(denoiser, x, sigmas, *, cond=None, callback=None, generator=None):
    """PNDM (Liu et al. 2022): three pseudo-Runge-Kutta warm-up steps (4 evaluations each; with the
    DDIM transfer x + (sigma' - sigma) eps this is classical RK4 in sigma, so midpoints are halfway
    in sigma), then PLMS on the eps of each step's start (4th-order Adams-Bashforth)."""
    eps_history: list[torch.Tensor] = []
    eps_of = lambda y, s: (y - call(denoiser, y, s, cond)) / s  # noqa: E731
    for i in range(_steps(sigmas)):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        if sigma_next == 0:
            denoised = call(denoiser, x, sigma, cond)
            x = denoised
            report(callback, i, x, sigma, sigma_next, denoised)
            continue
        e1 = eps_of(x, sigma)
        eps_history.append(e1)
        if len(eps_history) <= 3:
            mid = (sigma + sigma_next) / 2
            e2 = eps_of(x + (mid - sigma) * e1, mid)
            e3 = eps_of(x + (mid - sigma) * e2, mid)
            e4 = eps_of(x + (sigma_next - sigma) * e3, sigma_next)
            eps = (e1 + 2 * e2 + 2 * e3 + e4) / 6
        else:
            eps = sum(c * e for c, e in zip(AB_COEFFICIENTS[4], eps_history[::-1]))
        x = x + (sigma_next - sigma) * eps
        report(callback, i, x, sigma, sigma_next, x - sigma_next * e1)
    return x


# ---------------------------------------------------------------- DEIS


_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(12)


@torch.no_grad()
def sample_deis(denoiser, x, sigmas, *, cond=None, callback=None, generator=None, order: int = 3,
                time_of=None, lower_order_final: bool = True):
    """DEIS (Zhang & Chen 2023), exponential-integrator multistep on eps. In VE coordinates
    dx/dsigma = eps, so x' = x + sum_j C_j eps_j with C_j = integral over [sigma, sigma'] of the
    Lagrange basis L_j(t(s)) through the previous nodes, in the time variable t = time_of(sigma):
    log sigma by default (log-rho AB, as diffusers' DEIS), sigma itself for rho-AB
    (time_of=lambda s: s), or the schedule's time for t-AB (time_of=schedule.sigma_to_t).
    Coefficients are exact in log-sigma time, else integrated by 12-point Gauss-Legendre
    quadrature. `lower_order_final` as diffusers' DEIS: for runs under 15 steps, order <= 2 on the
    second-to-last step and 1 on the last. A step to sigma = 0 gives x = D (extrapolating the
    polynomial in log sigma down to 0 measured worse); sigmas may also end above 0, as diffusers'
    DEIS ends at sigma(t = 0), and then x is returned at that level."""
    time_of = time_of or torch.log

    def advance(i, n, x, sigma, sigma_next, eps_history):
        k = _order_now(order, i, len(eps_history), n, lower_order_final)
        if lower_order_final and n < 15 and i == n - 1:
            k = 1
        nodes = [float(time_of(s.double())) for s in sigmas[i - k + 1:i + 1].flip(0)]  # newest first
        coefficients = _deis_coefficients(nodes, float(sigma), float(sigma_next), time_of)
        return x + sum(c * e for c, e in zip(coefficients, eps_history[::-1]))

    return _eps_multistep(denoiser, x, sigmas, cond, callback, advance)


def _deis_coefficients(t_nodes: list[float], sigma: float, sigma_next: float, time_of) -> list[float]:
    """C_j = integral_sigma^sigma_next L_j(t(s)) ds for the Lagrange basis over t_nodes (newest first).

    In log-sigma time exactly: with u = log s, the integral of P(u) e^u du is e^u sum_k (-1)^k P^(k)(u),
    which vanishes as s -> 0 (so a step to sigma = 0 is fine); otherwise 12-point Gauss-Legendre."""
    if time_of is torch.log:
        out = []
        for j, tj in enumerate(t_nodes):
            others = [tm for m, tm in enumerate(t_nodes) if m != j]
            basis = np.polynomial.Polynomial.fromroots(others) / np.prod([tj - tm for tm in others]) if others \
                else np.polynomial.Polynomial([1.0])

            def antiderivative(value: float, basis=basis) -> float:
                if value == 0:
                    return 0.0
                u, total, term = np.log(value), 0.0, basis
                for k in range(len(basis.coef)):
                    total += (-1) ** k * term(u)
                    term = term.deriv()
                return value * total

            out.append(antiderivative(sigma_next) - antiderivative(sigma))
        return out
    s = 0.5 * (sigma_next - sigma) * _GAUSS_NODES + 0.5 * (sigma_next + sigma)  # quadrature points
    t = np.asarray(time_of(torch.as_tensor(s, dtype=torch.float64)), dtype=np.float64)
    weights = 0.5 * (sigma_next - sigma) * _GAUSS_WEIGHTS
    out = []
    for j, tj in enumerate(t_nodes):
        basis = np.ones_like(t)
        for m, tm in enumerate(t_nodes):
            if m != j:
                basis *= (t - tm) / (tj - tm)
        out.append(float(np.sum(weights * basis)))
    return out
