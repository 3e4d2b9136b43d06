"""Samplers by name (a plain dict) and the one entry point `sample`."""

from __future__ import annotations

import functools

from gen3d.diffusion import dpm_solver_v3 as v3
from gen3d.diffusion import samplers_basic as basic
from gen3d.diffusion import samplers_multistep as multi

# name -> (function, fixed options). Each entry is one algorithm with its defining options.
SAMPLERS = {
    "euler": (basic.sample_euler, {}),
    "ddim": (basic.sample_ddim, {}),
    "heun": (basic.sample_heun, {}),
    "ddpm": (basic.sample_ddpm, {}),
    "rf_euler": (basic.sample_rf_euler, {}),
    "rf_heun": (basic.sample_rf_heun, {}),
    "interpolant_sde": (basic.sample_interpolant_sde, {}),
    "dpm_solver_1": (multi.sample_dpm_solver, {"order": 1}),
    "dpm_solver_2s": (multi.sample_dpm_solver, {"order": 2, "method": "singlestep"}),
    "dpm_solver_3s": (multi.sample_dpm_solver, {"order": 3, "method": "singlestep"}),
    "dpm_solver_2m": (multi.sample_dpm_solver, {"order": 2, "method": "multistep"}),
    "dpm_solver_3m": (multi.sample_dpm_solver, {"order": 3, "method": "multistep"}),
    "dpmpp_1": (multi.sample_dpmpp_multistep, {"order": 1}),
    "dpmpp_2m": (multi.sample_dpmpp_multistep, {"order": 2}),
    "dpmpp_3m": (multi.sample_dpmpp_multistep, {"order": 3}),
    "dpmpp_2s": (multi.sample_dpmpp_2s, {}),
    "dpmpp_2s_grid": (multi.sample_dpmpp_2s, {"intermediate": "grid"}),
    "dpmpp_sde_2m": (multi.sample_dpmpp_sde_2m, {}),
    "dpmpp_sde_3m": (multi.sample_dpmpp_multistep, {"order": 3, "eta": 1.0}),
    "unipc_bh1": (multi.sample_unipc, {"variant": "bh1"}),
    "unipc_bh2": (multi.sample_unipc, {"variant": "bh2"}),
    "unipc_3_bh2": (multi.sample_unipc, {"variant": "bh2", "order": 3}),
    "plms": (multi.sample_plms, {}),
    "ipndm": (multi.sample_plms, {}),
    "pndm": (multi.sample_pndm, {}),
    "deis_1": (multi.sample_deis, {"order": 1}),
    "deis_2": (multi.sample_deis, {"order": 2}),
    "deis_3": (multi.sample_deis, {"order": 3}),
    "heavy_ball": (multi.sample_heavy_ball, {}),
    "ghvb": (multi.sample_ghvb, {}),
    "dpm_solver_v3": (v3.sample_dpm_solver_v3, {}),  # needs statistics=ModelStatistics
}

# Evaluations per step, for budgeting NFE (the final step to sigma = 0 always costs one).
EVALS_PER_STEP = {"heun": 2, "rf_heun": 2, "dpm_solver_2s": 2, "dpm_solver_3s": 3, "dpmpp_2s": 2}


def get_sampler(name: str):
    """The sampler function for `name`, with that entry's fixed options bound."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {', '.join(sorted(SAMPLERS))}")
    function, options = SAMPLERS[name]
    return functools.partial(function, **options) if options else function


def sample(name: str, denoiser, x, sigmas, **kwargs):
    """Run the sampler called `name`: sample("dpmpp_2m", D, x, sigmas, cond=..., generator=...)."""
    return get_sampler(name)(denoiser, x, sigmas, **kwargs)


def num_evaluations(name: str, num_steps: int) -> int:
    """Model evaluations of `name` over `num_steps` steps ending at sigma = 0 (PNDM's warm-up included)."""
    if name == "pndm":
        warmup = min(3, num_steps - 1)
        return 4 * warmup + (num_steps - warmup)
    per = EVALS_PER_STEP.get(name, 1)
    return per * (num_steps - 1) + 1
