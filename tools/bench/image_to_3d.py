"""Benchmark: image -> 3D quality on val renders against two baselines, and sampler choice.

    python tools/bench/image_to_3d.py [--root runs/tiny] [--model DIR] [--limit 50]
                                      [--samplers dpmpp_2m:20 unipc_bh2:10:4 ddim:50:1 ...]
                                      [--train-sets train train_extra] [--seen N] [--held-out N] [--json]
                                      [--output FILE.json]

Two query sets, view 0 (elevation 20, azimuth 0) of each asset through the same preprocessing as a
user's image: the val procedural seeds (ROOT/prepared/val, never trained on) and the real meshes
the preparation split into val (ROOT/prepared/train, split "val", sources real/*). Ground truth:
the asset's source mesh with its prepared rotation and normalization. Compared in the same run:
  - the generative model (each sampler:steps[:samples] given, samples = latents per image whose mean
    occupancy is extracted, default the model's; CFG from the model's defaults; seed --seed, default 0);
  - a retrieval baseline: the training asset whose view from the same camera is closest by
    (1 - mask IoU) + mean normal-render distance, its mesh returned (and, for reference only, the
    same with the RGB renders in place of the normal renders: the input the model gets, plus the
    camera);
  - the mean shape: the 0.5 level set of the mean training occupancy on a 48^3 grid, normalized
    like the model's output (cached in ROOT/mean_shape_48_<assets>.npy).
Both baselines use the train split of every ROOT/prepared/<set> named by --train-sets (default:
train, and train_extra when it exists: the bundled DiT's whole training set), the sources of
ROOT/prepared/<set>/X being ROOT/sources/<set>.
With --held-out N, also N procedural shapes that the preparation split into val in ROOT/prepared/train
(never trained on, not the benchmark's queries), with the baselines: the set to choose settings on.
With --seen N, also N procedural training shapes as queries (model rows and ceiling only): how well
the model fits what it was trained on, against how it generalizes. Also the ceiling of any latent
generator with this VAE: the query's own surface samples encoded (posterior mode) and decoded
through the same extraction, clean-up and face budget (not a baseline).
Reported per set: mean and median Chamfer-L1 and F-score@0.05 (CONVENTIONS), seconds per image, and
for each generative row the share of queries where it beats both baselines in Chamfer-L1 (the JSON
adds each query's source and each method's per-query Chamfer-L1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.fields import grid_points, marching_cubes, occupancy  # noqa: E402
from gen3d.geometry.io import load_mesh  # noqa: E402
from gen3d.geometry.metrics import compare_surfaces  # noqa: E402
from gen3d.geometry.transform import apply_transform, normalize  # noqa: E402
from gen3d.pipelines.image_to_3d import ORIENTATIONS, ImageTo3D  # noqa: E402
from gen3d.train.dit import encode_asset, view_rgba  # noqa: E402
from gen3d.train.vae import prepared_assets  # noqa: E402

TAU = 0.05
CEILING = "VAE reconstruction (ceiling)"
RGB_RETRIEVAL = "retrieval by RGB (not a baseline)"
SEEN = "seen procedural training shapes"  # --seen: training assets as queries, no baselines
HELD_OUT = "held-out procedural shapes (for choosing)"  # --held-out: train-split val rows, with baselines


def sources_of(asset: Path) -> Path:
    """ROOT/sources/<set> for an asset folder ROOT/prepared/<set>/<id> (the recipe's layout)."""
    return asset.parents[2] / "sources" / asset.parent.name


def prepared_mesh(asset: Path):
    """The asset's source mesh in its prepared frame (rotation, then the normalization transform)."""
    meta = json.loads((asset / "meta.json").read_text())
    mesh = load_mesh(sources_of(asset) / meta["source"])
    rotation = np.eye(4)
    rotation[:3, :3] = np.asarray(meta["rotation"])
    return apply_transform(mesh, np.asarray(meta["normalization"]) @ rotation)


def view_arrays(asset: Path, view: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, normal render scaled to [0, 1], RGB render as uint8) of one prepared view."""
    mask = np.asarray(Image.open(asset / "views" / f"{view:03d}_mask.png"), dtype=np.float32) / 255.0
    normal = np.asarray(Image.open(asset / "views" / f"{view:03d}_normal.png"), dtype=np.float32)
    rgb = np.asarray(Image.open(asset / "views" / f"{view:03d}_rgb.png").convert("RGB"))
    return mask > 0.5, normal / normal.max() if normal.max() > 0 else normal, rgb


def retrieve(query: Path, train: list[Path], cache: dict, using: str = "normal") -> Path:
    """Training asset with the smallest (1 - mask IoU) + mean |difference| of the normal renders
    (`using="normal"`, the issue's baseline) or of the RGB renders (`"rgb"`: what the model sees)
    from the same camera."""
    q_mask, q_normal, q_rgb = view_arrays(query)
    q_image = q_normal if using == "normal" else q_rgb.astype(np.float32) / 255.0
    best, best_score = None, np.inf
    for asset in train:
        if asset not in cache:
            cache[asset] = view_arrays(asset)
        mask, normal, rgb = cache[asset]
        image = normal if using == "normal" else rgb.astype(np.float32) / 255.0
        iou = (q_mask & mask).sum() / max(1, (q_mask | mask).sum())
        score = (1 - iou) + float(np.abs(q_image - image).mean())
        if score < best_score:
            best, best_score = asset, score
    return best


def mean_shape(train: list[Path], cache: Path, resolution: int = 48):
    if cache.is_file():
        mean = np.load(cache)
    else:
        points = grid_points(resolution)
        mean = np.zeros(len(points))
        for asset in train:
            mean += occupancy(prepared_mesh(asset), points)
        mean = (mean / len(train)).reshape((resolution,) * 3)
        np.save(cache, mean)
    return normalize(marching_cubes(mean, level=0.5, inside="positive"))[0]


def score(prediction, truth) -> dict:
    comparison = compare_surfaces(prediction, truth)
    return {"chamfer_l1": comparison.chamfer_l1, "fscore": comparison.fscore(TAU)}


def source_of(asset: Path) -> str:
    return json.loads((asset / "meta.json").read_text())["source"]


def evaluate_set(queries, pipeline, samplers, train, average, cache: dict, baselines: bool = True,
                 orients: list[str] | None = None, seed: int = 0) -> dict[str, list[dict]]:
    """Per method, one row per query: Chamfer-L1, F@0.05, seconds (`cache`: training views, shared by the sets;
    `baselines` False for queries from the training set, which retrieval would return unchanged)."""
    methods: dict[str, list[dict]] = {}
    for asset in queries:
        truth = prepared_mesh(asset)
        image = view_rgba(asset, 0)
        for spec in samplers:
            name, steps, *rest = spec.split(":")
            samples = int(rest[0]) if rest else pipeline.settings.samples
            for orient in orients or [pipeline.settings.orient]:
                clock = time.perf_counter()
                mesh = pipeline.run(image, seed=seed, sampler=name, steps=int(steps), samples=samples, orient=orient)
                row = {**score(mesh, truth), "seconds": time.perf_counter() - clock}
                label = f"gen3d {name} x{steps}" + (f", {samples} samples" if samples > 1 else "")
                methods.setdefault(label + (", not turned" if orient == "none" else ""), []).append(row)
        clock = time.perf_counter()
        ceiling = pipeline.to_mesh(encode_asset(pipeline.vae, asset)[None], pipeline.resolve(), source_of(asset))
        row = {**score(ceiling, truth), "seconds": time.perf_counter() - clock}
        methods.setdefault(CEILING, []).append(row)
        if baselines:
            for method, using in (("retrieval", "normal"), (RGB_RETRIEVAL, "rgb")):
                clock = time.perf_counter()
                found = retrieve(asset, train, cache, using=using)
                row = {**score(prepared_mesh(found), truth), "seconds": time.perf_counter() - clock}
                methods.setdefault(method, []).append(row)
            methods.setdefault("mean shape", []).append({**score(average, truth), "seconds": 0.0})
        print(f"  {source_of(asset)}: " + ", ".join(f"{k} {v[-1]['chamfer_l1']:.3f}" for k, v in methods.items()),
              file=sys.stderr, flush=True)
    return methods


def summarize(methods: dict[str, list[dict]]) -> dict[str, dict]:
    best_baseline = np.minimum([r["chamfer_l1"] for r in methods["retrieval"]],
                               [r["chamfer_l1"] for r in methods["mean shape"]]) if "retrieval" in methods else None
    summary = {}
    for name, rows in methods.items():
        summary[name] = {k: float(np.mean([r[k] for r in rows])) for k in ("chamfer_l1", "fscore", "seconds")}
        summary[name]["chamfer_median"] = float(np.median([r["chamfer_l1"] for r in rows]))
        if name.startswith("gen3d") and best_baseline is not None:
            summary[name]["beats_both"] = float(np.mean(np.array([r["chamfer_l1"] for r in rows]) < best_baseline))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "tiny")
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=50, help="queries per set (first N)")
    parser.add_argument("--samplers", nargs="+",
                        default=["dpmpp_2m:20:1", "unipc_bh2:10:1", "ddim:50:1", "unipc_bh2:10:4", "dpmpp_2m:20:4"],
                        help="sampler:steps[:samples] (samples default: the model's)")
    parser.add_argument("--train-sets", nargs="+", default=None,
                        help="prepared sets the baselines draw from (default: train, and train_extra if present)")
    parser.add_argument("--seen", type=int, default=0,
                        help="also N procedural training assets as queries (model and ceiling only)")
    parser.add_argument("--held-out", type=int, default=0,
                        help="also N held-out procedural shapes as queries (the train split's val rows of "
                             "ROOT/prepared/train: never trained on, not the benchmark's queries; for choosing)")
    parser.add_argument("--orient", nargs="+", choices=ORIENTATIONS, default=None,
                        help="orientation settings to run for each sampler (default: the model's; rows "
                             "without the front turn are marked 'not turned')")
    parser.add_argument("--seed", type=int, default=0,
                        help="first seed of each generative row (its samples use SEED, SEED+1, ...; default 0): "
                             "measure a choice over several seed blocks, e.g. 0 and 4 with 4 samples")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object, not tables")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON summary to this file")
    args = parser.parse_args()
    prepared = args.root / "prepared"
    sets = args.train_sets or [name for name in ("train", "train_extra") if (prepared / name).is_dir()]
    train = prepared_assets([prepared / name for name in sets], "train")
    query_sets = {
        "val procedural seeds": prepared_assets(prepared / "val", None)[: args.limit],
        "val real meshes": [a for a in prepared_assets(prepared / "train", "val")
                            if source_of(a).startswith("real/")][: args.limit],
    }
    if args.held_out:
        query_sets[HELD_OUT] = [a for a in prepared_assets(prepared / "train", "val")
                                if source_of(a).startswith("procedural/")][: args.held_out]
    if args.seen:
        query_sets[SEEN] = [
            a for a in train if source_of(a).startswith("procedural/")][:: max(1, len(train) // args.seen)][: args.seen]
    query_sets = {name: queries for name, queries in query_sets.items() if queries}  # --limit 0: only the extra sets
    pipeline = ImageTo3D.from_pretrained(args.model)
    start = time.perf_counter()
    average = mean_shape(train, args.root / f"mean_shape_48_{len(train)}.npy")
    results, per_query, views = {}, {}, {}
    for set_name, queries in query_sets.items():
        print(f"{set_name}: {len(queries)} queries", file=sys.stderr, flush=True)
        per_query[set_name] = evaluate_set(queries, pipeline, args.samplers, train, average, views,
                                           baselines=set_name != SEEN, orients=args.orient, seed=args.seed)
        results[set_name] = summarize(per_query[set_name])
    report = {set_name: {"queries": len(query_sets[set_name]), "methods": summary,
                         "sources": [source_of(a) for a in query_sets[set_name]],
                         "chamfer_l1": {k: [r["chamfer_l1"] for r in rows] for k, rows in per_query[set_name].items()}}
              for set_name, summary in results.items()}
    report["baselines"] = {"train_sets": sets, "train_assets": len(train)}
    report["seed"] = args.seed
    report["machine"] = {"arch": platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
                         "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - start, 1)}
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
        return
    print(f"# image -> 3D, {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - start:.0f} s in all, seed {args.seed}; baselines over "
          f"{len(train)} training assets ({', '.join(sets)})")
    for set_name, summary in results.items():
        print(f"\n#### {set_name} ({len(query_sets[set_name])} queries)\n")
        print("| method | Chamfer-L1 mean | median | F@0.05 | beats both baselines | s / image |")
        print("|---|---|---|---|---|---|")
        for name, m in summary.items():
            beats = f"{m['beats_both']:.0%}" if "beats_both" in m else "—"
            print(f"| {name} | {m['chamfer_l1']:.4f} | {m['chamfer_median']:.4f} | {m['fscore']:.3f} | {beats} "
                  f"| {m['seconds']:.2f} |")


if __name__ == "__main__":
    main()
