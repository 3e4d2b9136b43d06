"""Benchmark: gen3d samplers vs diffusers schedulers on the exact Gaussian-mixture oracle.

    python tools/bench/samplers.py [--draws 4096] [--gmm-seed 0] [--xt-seed 1] [--json]

Both sides drive the same exact model (the GMM's posterior mean, exposed to diffusers as an
eps-prediction network on a discrete VP schedule) from the same x_T at t = 999, and are scored
against the exact probability-flow endpoint (DOP853, float64, rtol 1e-10, then D at sigma 1e-3).
Per row: RMSE, the median per-sample error, and the share of samples that end in another mixture
component than their reference ("flips"). NFE counts actual model calls; each side runs its
largest budget <= nfe; each side's best setting is chosen per algorithm over all NFEs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.diffusion.dpm_solver_v3 import compute_statistics  # noqa: E402
from gen3d.diffusion.sampling import sample  # noqa: E402
from gen3d.diffusion.schedules import DiscreteVP, karras_sigmas, logsnr_sigmas  # noqa: E402
from gen3d.diffusion.search import DEFAULT_CANDIDATES, search_schedule  # noqa: E402
from tests.diffusion_oracles import GaussianMixture  # noqa: E402

NFES = (5, 6, 8, 10, 15, 20)
SCHEDULES = {"scaled_linear": ("scaled_linear", 0.00085, 0.012), "linear": ("linear", 1e-4, 2e-2)}

# gen3d sampler -> (diffusers class, list of candidate configs). The first element names the algorithm.
PAIRS = {
    "ddim": ("DDIMScheduler", [{"clip_sample": False, "set_alpha_to_one": True, "timestep_spacing": s}
                               for s in ("linspace", "trailing")]),
    "pndm": ("PNDMScheduler", [{"skip_prk_steps": False, "set_alpha_to_one": True, "timestep_spacing": s}
                               for s in ("linspace", "trailing")]),
    "plms": ("PNDMScheduler", [{"skip_prk_steps": True, "set_alpha_to_one": True, "timestep_spacing": s}
                               for s in ("linspace", "trailing")]),
    "deis_3": ("DEISMultistepScheduler", [{"solver_order": 3, "timestep_spacing": s, "use_karras_sigmas": k}
                                          for s in ("linspace", "trailing") for k in (False, True)]),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", [
        {"solver_order": 2, "algorithm_type": "dpmsolver++", "final_sigmas_type": "zero", "timestep_spacing": s,
         "use_karras_sigmas": k, "use_lu_lambdas": lu}
        for s in ("linspace", "trailing") for k, lu in ((False, False), (True, False), (False, True))]),
    "dpmpp_3m": ("DPMSolverMultistepScheduler", [
        {"solver_order": 3, "algorithm_type": "dpmsolver++", "final_sigmas_type": "zero", "timestep_spacing": s,
         "use_karras_sigmas": k, "use_lu_lambdas": lu}
        for s in ("linspace", "trailing") for k, lu in ((False, False), (True, False), (False, True))]),
    "dpmpp_2s_grid": ("DPMSolverSinglestepScheduler", [
        {"solver_order": 2, "algorithm_type": "dpmsolver++", "final_sigmas_type": "zero", "use_karras_sigmas": k}
        for k in (False, True)]),
    "unipc_bh2": ("UniPCMultistepScheduler", [
        {"solver_order": 2, "solver_type": "bh2", "final_sigmas_type": "zero", "timestep_spacing": s,
         "use_karras_sigmas": k} for s in ("linspace", "trailing") for k in (False, True)]),
    "euler": ("EulerDiscreteScheduler", [{"final_sigmas_type": "zero", "timestep_spacing": s, "use_karras_sigmas": k}
                                         for s in ("linspace", "trailing") for k in (False, True)]),
    "heun": ("HeunDiscreteScheduler", [{"timestep_spacing": s, "use_karras_sigmas": k}
                                       for s in ("linspace", "trailing") for k in (False, True)]),
}
GEN3D_ONLY = ["dpm_solver_v3", "dpm_solver_3s", "dpmpp_2s", "unipc_3_bh2", "ghvb", "deis_2", "rf_heun", "dpm_solver_3m"]
SPACINGS = ("linspace", "trailing", "logsnr", "karras", "logsnr_trailing", "karras_trailing")
# diffusers' DEIS has no final_sigmas_type: it always ends at sigma(t = 0) instead of 0 (no final
# denoising). gen3d's DEIS is offered that ending too ("*_to_min": the spacing with its 0 replaced).
EXTRA_SPACINGS = {"deis_3": ("linspace_to_min", "trailing_to_min")}
VE_SCHEDULERS = ("EulerDiscreteScheduler", "HeunDiscreteScheduler")


class Counter:
    """Wraps a denoiser or eps model and counts calls (one call = one model evaluation of the batch)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def gen3d_sigmas(schedule: DiscreteVP, steps: int, spacing: str) -> torch.Tensor:
    if spacing.endswith("_to_min"):
        sigmas = gen3d_sigmas(schedule, steps, spacing.removesuffix("_to_min")).clone()
        sigmas[-1] = schedule.sigma_min  # sigma(t = 0)
        return sigmas
    if spacing in ("trailing", "linspace"):
        return schedule.sigmas_for_timesteps(schedule.timesteps(steps, spacing))
    # "*_trailing": the range of the trailing timesteps (down to t = T/steps - 1, not t = 0), as
    # diffusers' use_karras_sigmas / use_lu_lambdas with timestep_spacing="trailing" do.
    low = float(schedule.sigmas_for_timesteps(schedule.timesteps(steps, "trailing"))[-2]) \
        if spacing.endswith("_trailing") else schedule.sigma_min
    if spacing.startswith("logsnr"):
        return logsnr_sigmas(steps, low, schedule.sigma_max)
    return karras_sigmas(steps, low, schedule.sigma_max)


def run_gen3d(name, gmm, schedule, x_T, nfe, spacing, options=None):
    best = None
    for steps in range(1, nfe + 1):  # largest step count whose evaluations fit the budget
        model = Counter(gmm.denoiser)
        out = sample(name, model, x_T.clone(), gen3d_sigmas(schedule, steps, spacing),
                     generator=torch.Generator().manual_seed(0), **(options or {}))
        if model.calls <= nfe:
            best = (out, model.calls)
    return best


def run_diffusers(class_name, config, gmm, schedule_spec, x_T_ve, nfe):
    import diffusers

    kind, beta_start, beta_end = schedule_spec
    schedule = DiscreteVP.make(kind, beta_start=beta_start, beta_end=beta_end)
    best = None
    for steps in range(1, nfe + 1):
        scheduler = getattr(diffusers, class_name)(num_train_timesteps=1000, beta_schedule=kind,
                                                   beta_start=beta_start, beta_end=beta_end, **config)
        try:
            scheduler.set_timesteps(steps)
        except (ValueError, IndexError):  # e.g. PNDM with fewer steps than its warm-up
            continue

        def eps_model(x_in, t):
            sigma = schedule.t_to_sigma(torch.as_tensor(float(t), dtype=torch.float64))
            x_ve = x_in * (1 + sigma**2).sqrt()  # scale_model_input gives x_vp = x_ve * alpha
            return (x_ve - gmm.denoiser(x_ve, sigma)) / sigma

        model = Counter(eps_model)
        # The same starting state for every scheduler: k-diffusion-style ones (Euler, Heun) hold VE
        # samples, the others VP ones. (Pipelines scale unit noise by init_noise_sigma, which for
        # Heun is sigma_max instead of sqrt(sigma_max^2 + 1): a different x_T, so not used here.)
        x = x_T_ve if class_name in VE_SCHEDULERS else x_T_ve / (1 + schedule.sigma_max**2) ** 0.5
        for t in scheduler.timesteps:
            eps = model(scheduler.scale_model_input(x, t), t)
            x = scheduler.step(eps, t, x).prev_sample
        if model.calls <= nfe:
            best = (x, model.calls)
        if model.calls > nfe:
            break
    return best


def score(x, reference, gmm, ref_components) -> dict:
    error = (x - reference).norm(dim=1)
    flips = (gmm.component_of(x) != ref_components).double().mean()
    return {"rmse": float((x - reference).pow(2).mean().sqrt()), "median": float(error.median()),
            "flips": float(flips)}


def pick_best(results: dict) -> str:
    """The setting with the lowest mean log RMSE over all NFEs (one choice per algorithm)."""
    return min(results, key=lambda k: np.mean([np.log(max(r["rmse"], 1e-300)) for r in results[k].values()]))


def bench(schedule_name: str, gmm_seed: int, xt_seed: int, draws: int, with_peer: bool, search: bool = True,
          only: list[str] | None = None, search_nfes: tuple = NFES) -> list[dict]:
    spec = SCHEDULES[schedule_name]
    schedule = DiscreteVP.make(spec[0], beta_start=spec[1], beta_end=spec[2])
    gmm = GaussianMixture.random(d=16, k=6, seed=gmm_seed, spread=100.0)
    z = torch.randn(draws, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(xt_seed))
    x_T = z * (1 + schedule.sigma_max**2) ** 0.5  # VE x_T at t = 999
    reference = gmm.reference_endpoint(x_T, schedule.sigma_max, 1e-3)
    ref_components = gmm.component_of(reference)
    statistics = v3_statistics(schedule, gmm, xt_seed)
    rows = []
    for name in [n for n in list(PAIRS) + GEN3D_ONLY if not only or n in only]:
        options = {"statistics": statistics} if name == "dpm_solver_v3" else None
        ours = {sp: {nfe: score(run_gen3d(name, gmm, schedule, x_T, nfe, sp, options)[0], reference, gmm,
                                ref_components) for nfe in NFES} for sp in SPACINGS + EXTRA_SPACINGS.get(name, ())}
        peer_best, theirs = None, None
        if with_peer and name in PAIRS:
            class_name, configs = PAIRS[name]
            theirs = {}
            for i, config in enumerate(configs):
                results = {}
                for nfe in NFES:
                    out = run_diffusers(class_name, config, gmm, spec, x_T, nfe)
                    results[nfe] = score(out[0], reference, gmm, ref_components) if out else \
                        {"rmse": float("inf"), "median": float("inf"), "flips": 1.0}
                theirs[i] = results
            peer_best = pick_best(theirs)
        our_best = pick_best(ours) if peer_best is None else min(
            ours, key=lambda k: max(ours[k][n]["rmse"] / theirs[peer_best][n]["rmse"] for n in NFES))
        for nfe in NFES:
            row = {"schedule": schedule_name, "gmm_seed": gmm_seed, "xt_seed": xt_seed, "sampler": name,
                   "spacing": our_best, "nfe": nfe, **ours[our_best][nfe], "peer": None, "peer_rmse": None,
                   "peer_median": None, "peer_flips": None}
            if peer_best is not None:
                peer = theirs[peer_best][nfe]
                row.update(peer=f"{PAIRS[name][0]}({json.dumps(PAIRS[name][1][peer_best], sort_keys=True)})",
                           peer_rmse=peer["rmse"], peer_median=peer["median"], peer_flips=peer["flips"])
            rows.append(row)
    if search:
        rows += searched_rows(schedule_name, schedule, gmm, x_T, reference, ref_components, gmm_seed, xt_seed,
                              statistics, search_nfes)
    return rows


def v3_statistics(schedule, gmm, xt_seed: int):
    """DPM-Solver-v3 statistics from 1024 calibration draws (x_T seed + 2000, disjoint from evaluation)."""
    calib_z = torch.randn(1024, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(xt_seed + 2000))
    calib = calib_z * (1 + schedule.sigma_max**2) ** 0.5
    return compute_statistics(gmm.denoiser, calib, schedule.sigma_max, schedule.sigma_min, points=200)


def searched_rows(schedule_name, schedule, gmm, x_T, reference, ref_components, gmm_seed, xt_seed,
                  statistics, nfes: tuple = NFES) -> list[dict]:
    """A schedule searched per NFE on 1024 calibration draws disjoint from the evaluation draws
    (x_T seed + 1000), scored on the evaluation draws; DPM-Solver-v3 (with its statistics) is
    one of the candidates, and the starts are the logSNR, Karras, uniform-time and trailing
    spacings (the bench's plain spacings for v3 and UniPC among them)."""
    calib_z = torch.randn(1024, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(xt_seed + 1000))
    calib = calib_z * (1 + schedule.sigma_max**2) ** 0.5
    calib_ref = gmm.reference_endpoint(calib, schedule.sigma_max, 1e-3)
    rows = []
    for nfe in nfes:
        found = search_schedule(gmm.denoiser, calib, calib_ref, nfe, schedule.sigma_max, schedule.sigma_min,
                                iterations=300, objective="rmse",
                                candidates=DEFAULT_CANDIDATES + (("dpm_solver_v3", {"statistics": statistics}),),
                                starts=tuple(gen3d_sigmas(schedule, nfe, sp) for sp in ("linspace", "trailing")))
        shown = {k: v for k, v in found.options.items() if k != "statistics"}
        scores = score(found.run(gmm.denoiser, x_T.clone()), reference, gmm, ref_components)
        rows.append({"schedule": schedule_name, "gmm_seed": gmm_seed, "xt_seed": xt_seed,
                     "sampler": f"searched[{found.sampler}{shown or ''}]", "spacing": "searched", "nfe": nfe,
                     **scores, "peer": None, "peer_rmse": None, "peer_median": None, "peer_flips": None})
    return rows


def per_step_overhead(steps: int = 50) -> dict:
    """Seconds per step at d = 4x64x64 with a trivial model, gen3d dpmpp_2m vs diffusers DPMSolverMultistep."""
    import diffusers

    x = torch.randn(1, 4, 64, 64)
    sigmas = logsnr_sigmas(steps, 0.03, 14.6).float()
    start = time.perf_counter()
    sample("dpmpp_2m", lambda y, s, c=None: y * 0.5, x.clone(), sigmas)
    ours = (time.perf_counter() - start) / steps
    scheduler = diffusers.DPMSolverMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                                      beta_end=0.012)
    scheduler.set_timesteps(steps)
    y = x.clone()
    start = time.perf_counter()
    for t in scheduler.timesteps:
        y = scheduler.step(y * 0.5, t, y).prev_sample
    theirs = (time.perf_counter() - start) / steps
    return {"gen3d_s_per_step": ours, "diffusers_s_per_step": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4096)
    parser.add_argument("--gmm-seed", type=int, default=0)
    parser.add_argument("--xt-seed", type=int, default=1)
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES))
    parser.add_argument("--no-peer", action="store_true", help="skip diffusers")
    parser.add_argument("--no-search", action="store_true", help="skip the searched schedules")
    parser.add_argument("--samplers", nargs="+", default=None, help="only these gen3d samplers (and their peers)")
    parser.add_argument("--search-nfes", nargs="+", type=int, default=list(NFES),
                        help="NFE budgets to search (each is searched independently)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for schedule_name in args.schedules:
        rows = bench(schedule_name, args.gmm_seed, args.xt_seed, args.draws, not args.no_peer, not args.no_search,
                     args.samplers, tuple(args.search_nfes))
        if args.json:
            for row in rows:
                print(json.dumps(row), flush=True)
            continue
        print(f"\n# {schedule_name} VP, GMM seed {args.gmm_seed}, x_T seed {args.xt_seed}, {args.draws} draws, "
              f"{platform.machine()}, {time.strftime('%Y-%m-%d')}")
        print("| sampler (spacing) | NFE | RMSE | median | flips | diffusers RMSE | median | flips | ratio RMSE |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            peer = "| — | — | — | — |" if r["peer"] is None else (
                f"| {r['peer_rmse']:.3e} | {r['peer_median']:.3e} | {r['peer_flips']:.3f} | "
                f"{r['rmse'] / r['peer_rmse']:.2f} |")
            print(f"| {r['sampler']} ({r['spacing']}) | {r['nfe']} | {r['rmse']:.3e} | {r['median']:.3e} | "
                  f"{r['flips']:.3f} {peer}")
        peers = sorted({(r["sampler"], r["peer"]) for r in rows if r["peer"]})
        print("\nDiffusers settings chosen (best per algorithm):")
        for sampler, peer in peers:
            print(f"- {sampler}: {peer}")
    if not args.json and not args.no_peer:
        print("\nper-step overhead (4x64x64, trivial model):", per_step_overhead())


if __name__ == "__main__":
    main()
