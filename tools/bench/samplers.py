"""Benchmark: gen3d samplers vs diffusers schedulers on the exact Gaussian-mixture oracle.

    python tools/bench/samplers.py [--draws 4096] [--gmm-seed 0] [--xt-seed 1] [--json]
    python tools/bench/samplers.py --table RUN.jsonl   (the tables of an earlier --json run)

Both sides drive the same exact model (the GMM's posterior mean, exposed to diffusers as an
eps-prediction network on a discrete VP schedule) from the same x_T at t = 999, and are scored
against the exact probability-flow endpoint (DOP853, float64, rtol 1e-10, then D at sigma 1e-3).
Per row: RMSE, the median per-sample error, and the share of samples that end in another mixture
component than their reference ("flips"); the ratio gen3d / diffusers with its paired standard
error. NFE counts actual model calls; each side runs its largest budget <= nfe. Each side's
setting (gen3d's spacing, diffusers' options) is chosen per algorithm over all NFEs on separate
calibration draws (--select-draws, a fixed seed), so the evaluation draws only measure.
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

from gen3d.diffusion.denoisers import VPDenoiser  # noqa: E402
from gen3d.diffusion.dpm_solver_v3 import compute_statistics  # noqa: E402
from gen3d.diffusion.sampling import sample  # noqa: E402
from gen3d.diffusion.schedules import DiscreteVP, karras_sigmas, logsnr_sigmas  # noqa: E402
from gen3d.diffusion.search import DEFAULT_CANDIDATES, json_safe_options, search_schedule  # noqa: E402
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
# "@rounded_t": the network evaluated at the rounded timestep of each (fractional) sigma while the
# solver steps on the exact sigmas, as diffusers' use_karras_sigmas / use_lu_lambdas do; for a
# discrete-time network that is a choice of its wrapper, VPDenoiser(time_of=round(sigma_to_t)).
SPACINGS = ("linspace", "linspace_skip_zero", "trailing", "logsnr", "karras", "logsnr_trailing", "karras_trailing",
            "logsnr@rounded_t", "karras@rounded_t", "logsnr_trailing@rounded_t", "karras_trailing@rounded_t")
# diffusers' DEIS has no final_sigmas_type: it always ends at sigma(t = 0) instead of 0 (no final
# denoising; with Karras sigmas by a last step of length 0 from sigma(t = 0) to itself); its DDIM
# and PNDM do so too at step counts whose stride does not divide 1000 (the last step's previous
# timestep is 0, not -1). gen3d is offered that ending too ("*_to_min": the spacing with its final 0
# replaced by sigma(t = 0)).
TO_MIN = ("linspace_to_min", "linspace_skip_zero_to_min", "trailing_to_min")
EXTRA_SPACINGS = {"deis_3": TO_MIN + ("karras_to_min", "karras_to_min@rounded_t"), "ddim": TO_MIN, "pndm": TO_MIN,
                  "plms": TO_MIN}
VE_SCHEDULERS = ("EulerDiscreteScheduler", "HeunDiscreteScheduler")
NO_PEER = {"peer": None, "peer_rmse": None, "peer_median": None, "peer_flips": None, "peer_rmse_se": None,
           "ratio_se": None}  # a row's peer fields where there is no diffusers counterpart


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
    if spacing in ("trailing", "linspace", "linspace_skip_zero"):
        return schedule.sigmas_for_timesteps(schedule.timesteps(steps, spacing))
    # "*_trailing": the range of the trailing timesteps (down to t = T/steps - 1, not t = 0), as
    # diffusers' use_karras_sigmas / use_lu_lambdas with timestep_spacing="trailing" do.
    low = float(schedule.sigmas_for_timesteps(schedule.timesteps(steps, "trailing"))[-2]) \
        if spacing.endswith("_trailing") else schedule.sigma_min
    if spacing.startswith("logsnr"):
        return logsnr_sigmas(steps, low, schedule.sigma_max)
    return karras_sigmas(steps, low, schedule.sigma_max)


def steps_for_budgets(count_calls, nfes=NFES) -> dict[int, int]:
    """For each NFE budget the largest step count whose model evaluations fit it (counted once per
    step count on a one-draw probe: the number of calls does not depend on the data)."""
    calls = {steps: count_calls(steps) for steps in range(1, max(nfes) + 1)}
    return {nfe: max((s for s, c in calls.items() if s <= nfe and c is not None and c <= nfe), default=None)
            for nfe in nfes}


def gen3d_denoiser(gmm, schedule: DiscreteVP, spacing: str):
    """The exact denoiser, or (spacing "...@rounded_t") the exact discrete-time eps network
    evaluated at the rounded timestep through VPDenoiser."""
    if not spacing.endswith("@rounded_t"):
        return gmm.denoiser

    def eps_network(x_vp, t, cond=None):  # the exact eps prediction at integer timestep t
        sigma = schedule.t_to_sigma(t).reshape(-1, 1)  # (B, 1)
        x_ve = x_vp * (1 + sigma**2).sqrt()
        return (x_ve - gmm.denoiser(x_ve, sigma[0])) / sigma

    return VPDenoiser(eps_network, "eps", time_of=lambda sigma: schedule.sigma_to_t(sigma).round())


def run_gen3d(name, gmm, schedule, x_T, steps, spacing, options=None, seed=0):
    model = Counter(gen3d_denoiser(gmm, schedule, spacing))
    spacing = spacing.removesuffix("@rounded_t")
    out = sample(name, model, x_T.clone(), gen3d_sigmas(schedule, steps, spacing),
                 generator=torch.Generator().manual_seed(seed), **(options or {}))
    return out, model.calls


def run_diffusers(class_name, config, gmm, schedule_spec, x_T_ve, steps):
    """One diffusers run of `steps` steps; None if the scheduler refuses that many (e.g. PNDM with
    fewer steps than its warm-up)."""
    import diffusers

    diffusers.utils.logging.set_verbosity_error()  # not its notes on lower_order_final, once per run

    kind, beta_start, beta_end = schedule_spec
    schedule = DiscreteVP.make(kind, beta_start=beta_start, beta_end=beta_end)
    scheduler = getattr(diffusers, class_name)(num_train_timesteps=1000, beta_schedule=kind,
                                               beta_start=beta_start, beta_end=beta_end, **config)
    try:
        scheduler.set_timesteps(steps)
    except (ValueError, IndexError):
        return None

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
    return x, model.calls


class Draws:
    """x_T draws (VE, at t = 999) in chunks, each with its exact endpoint and mixture component.
    Chunks keep the reference solve's error norm (an RMS over the whole chunk) as tight per
    sample as at 16,384 draws, and memory flat."""

    def __init__(self, gmm, schedule, count: int, seed: int, chunk: int = 16384):
        z = torch.randn(count, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        self.gmm, self.count, self.chunks = gmm, count, []
        for x_T in (z * (1 + schedule.sigma_max**2) ** 0.5).split(chunk):  # (chunk, 16)
            reference = gmm.reference_endpoint(x_T, schedule.sigma_max, 1e-3)
            self.chunks.append((x_T, reference, gmm.component_of(reference)))

    def errors(self, run) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample squared errors (count,) and flip flags (count,) of the endpoints `run(x_T, chunk_index)`."""
        squared, flipped = [], []
        for i, (x_T, reference, components) in enumerate(self.chunks):
            out = run(x_T, i)
            squared.append((out - reference).pow(2).sum(1))
            flipped.append(self.gmm.component_of(out) != components)
        return torch.cat(squared), torch.cat(flipped)


def score(errors, dim: int = 16) -> dict:
    """RMSE over all coordinates (with its standard error, delta method), median per-sample L2
    error, share of mode flips."""
    if errors is None:
        return {"rmse": float("inf"), "rmse_se": float("inf"), "median": float("inf"), "flips": 1.0}
    squared, flipped = errors
    rmse = float((squared.mean() / dim).sqrt())
    se_mean = float(squared.std() / len(squared) ** 0.5 / dim)  # of RMSE^2
    return {"rmse": rmse, "rmse_se": se_mean / (2 * rmse) if rmse > 0 else 0.0,
            "median": float(squared.sqrt().median()), "flips": float(flipped.double().mean())}


def ratio_se(ours, theirs) -> float | None:
    """Standard error of RMSE_ours / RMSE_theirs on the same draws (paired delta method)."""
    if ours is None or theirs is None:
        return None
    a, b = ours[0], theirs[0]
    ma, mb = a.mean(), b.mean()
    if ma <= 0 or mb <= 0:
        return None
    ratio = float((ma / mb).sqrt())
    return ratio * 0.5 * float((a / ma - b / mb).std() / len(a) ** 0.5)


def pick_best(results: dict) -> str:
    """The setting with the lowest mean log RMSE over all NFEs (one choice per algorithm)."""
    return min(results, key=lambda k: np.mean([np.log(max(r["rmse"], 1e-300)) for r in results[k].values()]))


def results_by_budget(run, draws: Draws) -> dict[int, tuple]:
    """NFE -> per-sample errors on `draws` (None where no step count fits), for `run(x_T, steps,
    chunk_index) -> (endpoints, calls)` or None (the scheduler refuses that many steps). Calls are
    counted on a one-draw probe; each step count then runs once, whichever budgets share it."""
    probe = draws.chunks[0][0][:1]

    def calls(steps):
        out = run(probe, steps, 0)
        return None if out is None else out[1]

    budgets = steps_for_budgets(calls)
    by_steps = {s: draws.errors(lambda x, i, s=s: run(x, s, i)[0]) for s in set(budgets.values()) if s is not None}
    return {nfe: by_steps.get(s) for nfe, s in budgets.items()}


def gen3d_results(name, gmm, schedule, draws: Draws, spacing, options=None) -> dict[int, tuple]:
    return results_by_budget(lambda x, steps, i: run_gen3d(name, gmm, schedule, x, steps, spacing, options, seed=i),
                             draws)


def diffusers_results(class_name, config, gmm, spec, draws: Draws) -> dict[int, tuple]:
    return results_by_budget(lambda x, steps, i: run_diffusers(class_name, config, gmm, spec, x, steps), draws)


def choose_settings(name, gmm, schedule, spec, calibration: Draws, with_peer: bool, options) -> tuple:
    """Each side's setting for one algorithm, chosen on the calibration draws (never the evaluation
    ones): diffusers' by its lowest mean log RMSE over the NFEs, gen3d's spacing by the smallest
    worst-case RMSE ratio to that (by its own mean log RMSE where there is no peer)."""
    has_peer = with_peer and name in PAIRS
    spacings = [sp for sp in SPACINGS + EXTRA_SPACINGS.get(name, ()) if has_peer or "@" not in sp]
    ours = {sp: {n: score(e) for n, e in gen3d_results(name, gmm, schedule, calibration, sp, options).items()}
            for sp in spacings}
    if not has_peer:
        return pick_best(ours), None
    class_name, configs = PAIRS[name]
    theirs = {i: {n: score(e) for n, e in diffusers_results(class_name, c, gmm, spec, calibration).items()}
              for i, c in enumerate(configs)}
    peer_best = pick_best(theirs)
    our_best = min(ours, key=lambda k: max(ours[k][n]["rmse"] / theirs[peer_best][n]["rmse"] for n in NFES))
    return our_best, peer_best


def bench(schedule_name: str, gmm_seed: int, xt_seed: int, draws: int, with_peer: bool, search: bool = True,
          only: list[str] | None = None, search_nfes: tuple = NFES, select_draws: int = 4096,
          select_seed: int = 10_000, search_draws: int = 1024, stats_draws: int = 1024,
          search_screen: int | None = None, search_keep: int = 3) -> list[dict]:
    spec = SCHEDULES[schedule_name]
    schedule = DiscreteVP.make(spec[0], beta_start=spec[1], beta_end=spec[2])
    gmm = GaussianMixture.random(d=16, k=6, seed=gmm_seed, spread=100.0)
    started = time.perf_counter()
    calibration = Draws(gmm, schedule, select_draws, select_seed)
    evaluation = Draws(gmm, schedule, draws, xt_seed)
    log(f"{schedule_name}: reference endpoints of {select_draws} + {draws} draws, "
        f"{time.perf_counter() - started:.0f} s")
    statistics = v3_statistics(schedule, gmm, xt_seed, stats_draws)
    rows = []
    for name in [n for n in list(PAIRS) + GEN3D_ONLY if not only or n in only]:
        options = {"statistics": statistics} if name == "dpm_solver_v3" else None
        our_best, peer_best = choose_settings(name, gmm, schedule, spec, calibration, with_peer, options)
        ours = gen3d_results(name, gmm, schedule, evaluation, our_best, options)
        theirs = None if peer_best is None else diffusers_results(PAIRS[name][0], PAIRS[name][1][peer_best], gmm,
                                                                  spec, evaluation)
        for nfe in NFES:
            row = {"schedule": schedule_name, "gmm_seed": gmm_seed, "xt_seed": xt_seed, "draws": draws,
                   "sampler": name, "spacing": our_best, "nfe": nfe, **score(ours[nfe]), **NO_PEER}
            if peer_best is not None:
                peer = score(theirs[nfe])
                row.update(peer=f"{PAIRS[name][0]}({json.dumps(PAIRS[name][1][peer_best], sort_keys=True)})",
                           peer_rmse=peer["rmse"], peer_median=peer["median"], peer_flips=peer["flips"],
                           peer_rmse_se=peer["rmse_se"], ratio_se=ratio_se(ours[nfe], theirs[nfe]))
            rows.append(row)
        log(f"{schedule_name}: {name} ({our_best}), {time.perf_counter() - started:.0f} s")
    if search:
        rows += searched_rows(schedule_name, schedule, gmm, evaluation, gmm_seed, xt_seed, statistics, search_nfes,
                              draws=search_draws, screen=search_screen, keep=search_keep)
    return rows


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def v3_statistics(schedule, gmm, xt_seed: int, draws: int = 1024):
    """DPM-Solver-v3 statistics from calibration draws (x_T seed + 2000, disjoint from evaluation)."""
    calib_z = torch.randn(draws, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(xt_seed + 2000))
    calib = calib_z * (1 + schedule.sigma_max**2) ** 0.5
    return compute_statistics(gmm.denoiser, calib, schedule.sigma_max, schedule.sigma_min, points=200)


def searched_rows(schedule_name, schedule, gmm, evaluation: Draws, gmm_seed, xt_seed, statistics,
                  nfes: tuple = NFES, draws: int = 1024, screen: int | None = None,
                  keep: int = 3) -> list[dict]:
    """A schedule searched per NFE on calibration draws disjoint from the evaluation draws
    (x_T seed + 1000), scored on the evaluation draws; DPM-Solver-v3 (with its statistics) is
    one of the candidates, and the starts are the logSNR, Karras, uniform-time and trailing
    spacings (the bench's plain spacings for v3 and UniPC among them); `screen`: see search_schedule."""
    calib_z = torch.randn(draws, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(xt_seed + 1000))
    calib = calib_z * (1 + schedule.sigma_max**2) ** 0.5
    calib_ref = gmm.reference_endpoint(calib, schedule.sigma_max, 1e-3)
    rows = []
    for nfe in nfes:
        found = search_schedule(gmm.denoiser, calib, calib_ref, nfe, schedule.sigma_max, schedule.sigma_min,
                                iterations=300, objective="rmse", screen=screen, keep=keep,
                                candidates=DEFAULT_CANDIDATES + (("dpm_solver_v3", {"statistics": statistics}),),
                                starts=tuple(gen3d_sigmas(schedule, nfe, sp) for sp in ("linspace", "trailing")))
        shown = json_safe_options(found.options)
        scores = score(evaluation.errors(lambda x, i, found=found: found.run(gmm.denoiser, x.clone())))
        rows.append({"schedule": schedule_name, "gmm_seed": gmm_seed, "xt_seed": xt_seed, "draws": evaluation.count,
                     "sampler": f"searched[{found.sampler}{shown or ''}]", "spacing": "searched", "nfe": nfe,
                     **scores, **NO_PEER})
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


def print_table(rows: list[dict], date: str) -> None:
    """One markdown table per (schedule, GMM seed, x_T seed), then diffusers' chosen settings."""
    for key in dict.fromkeys((r["schedule"], r["gmm_seed"], r["xt_seed"], r.get("draws")) for r in rows):
        group = [r for r in rows if (r["schedule"], r["gmm_seed"], r["xt_seed"], r.get("draws")) == key]
        print(f"\n# {key[0]} VP, GMM seed {key[1]}, x_T seed {key[2]}, {key[3]} draws, {platform.machine()}, {date}")
        print("| sampler (spacing) | NFE | RMSE ± s.e. | median | flips | diffusers RMSE | median | flips | "
              "ratio RMSE ± s.e. |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in group:
            peer = "| — | — | — | — |" if r["peer"] is None else (
                f"| {r['peer_rmse']:.3e} | {r['peer_median']:.3e} | {r['peer_flips']:.4f} | "
                + ("— |" if r["ratio_se"] is None else f"{r['rmse'] / r['peer_rmse']:.4f} ± {r['ratio_se']:.4f} |"))
            print(f"| {r['sampler']} ({r['spacing']}) | {r['nfe']} | {r['rmse']:.3e} ± {r['rmse_se'] / r['rmse']:.1%} "
                  f"| {r['median']:.3e} | {r['flips']:.4f} {peer}")
        peers = sorted({(r["sampler"], r["peer"]) for r in group if r["peer"]})
        if peers:
            print("\nDiffusers settings chosen (best per algorithm, on the calibration draws):")
            for sampler, peer in peers:
                print(f"- {sampler}: {peer}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=None,
                        help="print the tables of an earlier --json run (a .jsonl file) and exit")
    parser.add_argument("--draws", type=int, default=4096)
    parser.add_argument("--gmm-seed", type=int, default=0)
    parser.add_argument("--xt-seed", type=int, default=1)
    parser.add_argument("--select-draws", type=int, default=4096,
                        help="calibration draws on which each side's spacing/setting is chosen")
    parser.add_argument("--select-seed", type=int, default=10_000,
                        help="their seed (fixed per mixture, so runs on different x_T seeds choose alike)")
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES))
    parser.add_argument("--no-peer", action="store_true", help="skip diffusers")
    parser.add_argument("--no-search", action="store_true", help="skip the searched schedules")
    parser.add_argument("--samplers", nargs="+", default=None, help="only these gen3d samplers (and their peers)")
    parser.add_argument("--search-nfes", nargs="+", type=int, default=list(NFES),
                        help="NFE budgets to search (each is searched independently)")
    parser.add_argument("--search-draws", type=int, default=1024, help="calibration draws of the schedule search")
    parser.add_argument("--search-screen", type=int, default=None,
                        help="screen every candidate x start on this many of the search draws first; only the best "
                             "--search-keep are searched on all of them")
    parser.add_argument("--search-keep", type=int, default=3, help="screened results searched again on all draws")
    parser.add_argument("--stats-draws", type=int, default=1024, help="calibration draws of DPM-Solver-v3's statistics")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.table is not None:
        rows = [json.loads(line) for line in args.table.read_text().splitlines() if line.startswith("{")]
        print_table(rows, time.strftime("%Y-%m-%d", time.localtime(args.table.stat().st_mtime)))
        return
    torch.set_num_threads(args.threads)
    for schedule_name in args.schedules:
        rows = bench(schedule_name, args.gmm_seed, args.xt_seed, args.draws, not args.no_peer, not args.no_search,
                     args.samplers, tuple(args.search_nfes), select_draws=args.select_draws,
                     select_seed=args.select_seed, search_draws=args.search_draws, stats_draws=args.stats_draws,
                     search_screen=args.search_screen, search_keep=args.search_keep)
        if args.json:
            for row in rows:
                print(json.dumps(row), flush=True)
        else:
            print_table(rows, time.strftime("%Y-%m-%d"))
    if not args.json and not args.no_peer:
        print("\nper-step overhead (4x64x64, trivial model):", per_step_overhead())


if __name__ == "__main__":
    main()
