"""Solver-schedule search in the spirit of USF (Liu et al., "A Unified Sampling Framework for
Solver Searching") and AutoDiffusion: for a fixed NFE budget, choose the sampler/order and the
noise levels that minimise the error to a high-NFE reference on a few calibration samples.

The search is gradient-free (Nelder-Mead over the free log-sigma positions, started from the
logSNR and Karras spacings) and costs (iterations x NFE) model evaluations of the calibration
batch. The result is saved as safetensors (the sigmas) plus JSON (sampler, options, scores).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.optimize import minimize

from gen3d.diffusion.dpm_solver_v3 import ModelStatistics
from gen3d.diffusion.sampling import get_sampler, sample
from gen3d.diffusion.schedules import karras_sigmas, logsnr_sigmas

# (sampler name, options) tried by default: one evaluation per step, so NFE = number of steps.
DEFAULT_CANDIDATES = (("unipc_bh2", {"order": 2}), ("unipc_bh2", {"order": 3}), ("dpmpp_3m", {}),
                      ("dpmpp_2m", {}), ("deis_3", {}))


@dataclass
class SearchedSchedule:
    """A searched sampler + sigmas for one NFE budget, reusable with `run`."""

    sampler: str
    options: dict
    sigmas: torch.Tensor  # (nfe + 1,) descending, last 0
    nfe: int
    calibration_error: float
    start_error: float
    history: list = field(default_factory=list)

    def run(self, denoiser, x, **kwargs):
        return sample(self.sampler, denoiser, x, self.sigmas.to(x.dtype), **self.options, **kwargs)

    def save(self, path: str | Path) -> None:
        """Write `<path>.safetensors` (the sigmas) and `<path>.json` (everything else); DPM-Solver-v3
        statistics in the options go to `<path>_statistics.safetensors/.json`."""
        path = Path(path)
        save_file({"sigmas": self.sigmas.double().contiguous()}, str(path.with_suffix(".safetensors")))
        options = dict(self.options)
        statistics = options.pop("statistics", None)
        meta = {**asdict(replace(self, options={})), "options": options}
        meta.pop("sigmas")
        if statistics is not None:
            statistics.save(path.with_name(path.name + "_statistics"))
            meta["statistics_file"] = path.name + "_statistics"
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> SearchedSchedule:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        statistics_file = meta.pop("statistics_file", None)
        if statistics_file is not None:
            meta["options"]["statistics"] = ModelStatistics.load(path.with_name(statistics_file))
        return cls(sigmas=load_file(str(path.with_suffix(".safetensors")))["sigmas"], **meta)


def reference_by_sampler(denoiser, x_T: torch.Tensor, sigma_max: float, sigma_min: float, steps: int = 200):
    """High-NFE reference endpoint (UniPC order 3 on logSNR spacing), for models with no exact solution."""
    return sample("unipc_3_bh2", denoiser, x_T.clone(), logsnr_sigmas(steps, sigma_min, sigma_max).to(x_T.dtype))


def _sigmas_from(free: np.ndarray, sigma_max: float, sigma_floor: float) -> torch.Tensor:
    """Monotone sigmas from unconstrained weights: sigma_max, then nfe - 1 levels above sigma_floor, then 0."""
    weights = np.exp(free - free.max())
    fractions = np.cumsum(weights / weights.sum())[:-1]  # (nfe - 1,) in (0, 1)
    log_sigmas = np.log(sigma_max) + fractions * (np.log(sigma_floor) - np.log(sigma_max))
    return torch.tensor(np.concatenate([[sigma_max], np.exp(log_sigmas), [0.0]]), dtype=torch.float64)


def _free_from(sigmas: torch.Tensor, sigma_max: float, sigma_floor: float) -> np.ndarray:
    """Inverse of _sigmas_from for a starting spacing."""
    log_sigmas = sigmas[1:-1].log().numpy()
    fractions = (log_sigmas - np.log(sigma_max)) / (np.log(sigma_floor) - np.log(sigma_max))
    increments = np.diff(np.concatenate([[0.0], fractions, [1.0]]))
    return np.log(np.clip(increments, 1e-9, None))


def json_safe_options(options: dict) -> dict:
    """Sampler options without the DPM-Solver-v3 statistics object (saved apart), for JSON history."""
    return {k: v for k, v in options.items() if k != "statistics"}


def _nelder_mead(error_of, name, options, start: torch.Tensor, sigma_max: float, floor: float,
                 iterations: int) -> tuple[torch.Tensor, float]:
    """Nelder-Mead over the free log-sigma positions from `start`: (best sigmas, their error)."""
    result = minimize(lambda w: error_of(name, options, _sigmas_from(w, sigma_max, floor)),
                      _free_from(start, sigma_max, floor), method="Nelder-Mead",
                      options={"maxfev": iterations, "xatol": 1e-4, "fatol": 1e-7})
    return _sigmas_from(result.x, sigma_max, floor), float(result.fun)


def search_schedule(denoiser, x_T: torch.Tensor, reference: torch.Tensor, nfe: int, sigma_max: float,
                    sigma_min: float, *, candidates=DEFAULT_CANDIDATES, iterations: int = 400,
                    sigma_floor: float | None = None, objective: str = "mean",
                    starts: tuple = (), screen: int | None = None, keep: int = 3) -> SearchedSchedule:
    """Search sampler/order and noise levels for `nfe` evaluations against `reference` on calibration x_T.

    objective="mean": the mean per-sample L2 distance to the reference endpoint (robust to the
    rare sample that changes mode); "rmse": the root mean squared error (dominated by such
    samples). `sigma_floor` bounds the last noise level from below (default sigma_min / 4).
    `screen`=M (< len(x_T)): every candidate x start is searched on the first M calibration draws
    only, and the `keep` best results go on to a second search on all draws, started from their
    screened sigmas (about len(x_T) / M x fewer evaluations for the many candidates).
    """
    if objective not in ("mean", "rmse"):
        raise ValueError("objective must be 'mean' or 'rmse'")
    floor = sigma_floor if sigma_floor is not None else sigma_min / 4

    def error_on(x, ref):
        def error_of(name, options, sigmas):
            with torch.no_grad():
                out = get_sampler(name)(denoiser, x.clone(), sigmas.to(x.dtype), **options)
            diff = out - ref
            value = float(diff.norm(dim=1).mean()) if objective == "mean" else float(diff.pow(2).mean().sqrt())
            return value if np.isfinite(value) else 1e9
        return error_of

    on_all = error_on(x_T, reference)
    screened = screen is not None and screen < len(x_T)
    first_pass = error_on(x_T[:screen], reference[:screen]) if screened else on_all
    trials, history = [], []  # trials: (error, name, options, sigmas, start error of the candidate)
    for name, options in candidates:
        initial = [logsnr_sigmas(nfe, sigma_min, sigma_max), karras_sigmas(nfe, sigma_min, sigma_max),
                   *[torch.as_tensor(s, dtype=torch.float64) for s in starts]]
        start_error = min(on_all(name, options, s) for s in initial)
        for start in initial:
            sigmas, error = _nelder_mead(first_pass, name, options, start, sigma_max, floor, iterations)
            history.append({"sampler": name, "options": json_safe_options(options), "error": error,
                            "draws": screen if screened else len(x_T)})
            trials.append((error, name, options, sigmas, start_error))
    if screened:
        kept = sorted(trials, key=lambda trial: trial[0])[:keep]
        trials = []
        for _, name, options, sigmas, start_error in kept:
            sigmas, error = _nelder_mead(on_all, name, options, sigmas, sigma_max, floor, iterations)
            history.append({"sampler": name, "options": json_safe_options(options), "error": error, "draws": len(x_T)})
            trials.append((error, name, options, sigmas, start_error))
    error, name, options, sigmas, start_error = min(trials, key=lambda trial: trial[0])
    return SearchedSchedule(name, dict(options), sigmas, nfe, error, start_error, history)
