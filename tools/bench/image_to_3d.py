"""Benchmark: image -> 3D quality on val renders against two baselines, and sampler choice.

    python tools/bench/image_to_3d.py [--root runs/tiny] [--model DIR] [--limit 20]
                                      [--samplers dpmpp_2m:20 unipc_bh2:10 ddim:50] [--json]

Queries: view 0 (elevation 20, azimuth 0) of every asset in ROOT/prepared/val (val procedural seeds),
through the same preprocessing as a user's image. Ground truth: the asset's source mesh with its
prepared rotation and normalization. Compared in the same run:
  - the generative model (each sampler:steps given, CFG from the model's defaults, seed 0);
  - a retrieval baseline: the training asset whose view from the same camera is closest by
    (1 - mask IoU) + mean normal-render distance, its mesh returned;
  - the mean shape: the 0.5 level set of the mean training occupancy on a 64^3 grid.
Reported: Chamfer-L1 and F-score@0.05 (CONVENTIONS), and seconds per image.
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
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.fields import grid_points, marching_cubes, occupancy  # noqa: E402
from gen3d.geometry.io import load_mesh  # noqa: E402
from gen3d.geometry.metrics import compare_surfaces  # noqa: E402
from gen3d.geometry.transform import apply_transform  # noqa: E402
from gen3d.pipelines.image_to_3d import ImageTo3D  # noqa: E402
from gen3d.train.vae import prepared_assets  # noqa: E402

TAU = 0.05


def prepared_mesh(asset: Path, sources: Path):
    """The asset's source mesh in its prepared frame (rotation, then the normalization transform)."""
    meta = json.loads((asset / "meta.json").read_text())
    mesh = load_mesh(sources / meta["source"])
    rotation = np.eye(4)
    rotation[:3, :3] = np.asarray(meta["rotation"])
    return apply_transform(mesh, np.asarray(meta["normalization"]) @ rotation)


def view_arrays(asset: Path, view: int = 0) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(Image.open(asset / "views" / f"{view:03d}_mask.png"), dtype=np.float32) / 255.0
    normal = np.asarray(Image.open(asset / "views" / f"{view:03d}_normal.png"), dtype=np.float32)
    return mask > 0.5, normal / normal.max() if normal.max() > 0 else normal


def retrieve(query: Path, train: list[Path], cache: dict) -> Path:
    """Training asset with the smallest (1 - mask IoU) + mean |normal difference| from the same camera."""
    q_mask, q_normal = view_arrays(query)
    best, best_score = None, np.inf
    for asset in train:
        if asset not in cache:
            cache[asset] = view_arrays(asset)
        mask, normal = cache[asset]
        iou = (q_mask & mask).sum() / max(1, (q_mask | mask).sum())
        score = (1 - iou) + float(np.abs(q_normal - normal).mean())
        if score < best_score:
            best, best_score = asset, score
    return best


def mean_shape(train: list[Path], sources: Path, resolution: int = 64):
    points = grid_points(resolution)
    mean = np.zeros(len(points))
    for asset in train:
        mean += occupancy(prepared_mesh(asset, sources), points)
    return marching_cubes((mean / len(train)).reshape((resolution,) * 3), level=0.5, inside="positive")


def score(prediction, truth) -> dict:
    comparison = compare_surfaces(prediction, truth)
    return {"chamfer_l1": comparison.chamfer_l1, "fscore": comparison.fscore(TAU)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "tiny")
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--samplers", nargs="+", default=["dpmpp_2m:20", "unipc_bh2:10", "ddim:50"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    train = [a for a in prepared_assets(args.root / "prepared" / "train", "train")
             if json.loads((a / "meta.json").read_text())["source"].startswith("procedural/")]
    val = prepared_assets(args.root / "prepared" / "val", None)[: args.limit]
    train_sources, val_sources = args.root / "sources" / "train", args.root / "sources" / "val"
    pipeline = ImageTo3D.from_pretrained(args.model)
    methods: dict[str, list[dict]] = {}
    start = time.perf_counter()
    average = mean_shape(train, train_sources)
    cache: dict = {}
    for asset in val:
        truth = prepared_mesh(asset, val_sources)
        rgb = Image.open(asset / "views" / "000_rgb.png").convert("RGB")
        image = Image.merge("RGBA", (*rgb.split(), Image.open(asset / "views" / "000_mask.png").convert("L")))
        for spec in args.samplers:
            name, steps = spec.split(":")
            clock = time.perf_counter()
            mesh = pipeline.run(image, seed=0, sampler=name, steps=int(steps))
            row = {**score(mesh, truth), "seconds": time.perf_counter() - clock}
            methods.setdefault(f"gen3d {name} x{steps}", []).append(row)
        clock = time.perf_counter()
        found = retrieve(asset, train, cache)
        row = {**score(prepared_mesh(found, train_sources), truth), "seconds": time.perf_counter() - clock}
        methods.setdefault("retrieval", []).append(row)
        methods.setdefault("mean shape", []).append({**score(average, truth), "seconds": 0.0})
    summary = {name: {k: float(np.mean([r[k] for r in rows])) for k in ("chamfer_l1", "fscore", "seconds")}
               for name, rows in methods.items()}
    if args.json:
        print(json.dumps({"val_assets": len(val), "methods": summary}))
        return
    print(f"# image -> 3D on {len(val)} val renders, {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - start:.0f} s in all")
    print("| method | Chamfer-L1 | F@0.05 | s / image |\n|---|---|---|---|")
    for name, m in summary.items():
        print(f"| {name} | {m['chamfer_l1']:.4f} | {m['fscore']:.3f} | {m['seconds']:.2f} |")


if __name__ == "__main__":
    main()
