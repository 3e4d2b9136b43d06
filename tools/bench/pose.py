"""Benchmark: pose alignment accuracy on held-out procedural seeds and on upright real meshes.

    python tools/bench/pose.py [--per-family 10] [--scorers classifier priors] [--json]

Procedural (val seed range, never trained on): each shape is rotated by a random element of the
24-group ("group") or a random rotation of SO(3) ("arbitrary"), then aligned. "exact" = the
aligned shape coincides with the canonical one up to the shape's own symmetries (one-sided
Chamfer < 0.03 after alignment); "up" = the canonical up axis lands within 10 degrees of +Y, up to
those symmetries. Real meshes (../shared/data, upright ones from its README): up-axis error in
degrees for the file as loaded and for random 24-group / SO(3) rotations of it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.io import load_mesh  # noqa: E402
from gen3d.geometry.procedural import FAMILIES, generate_shape, shape_seeds  # noqa: E402
from gen3d.geometry.sampling import sample_surface  # noqa: E402
from gen3d.geometry.transform import apply_transform, normalize  # noqa: E402
from gen3d.stages.curate.pose import ROTATIONS, SCORERS, align_pose, symmetries  # noqa: E402

UPRIGHT = ["stanford-bunny.obj", "spot.obj", "cow.obj", "suzanne.obj", "teapot.obj", "Duck.glb",
           "CesiumMilkTruck.glb", "monkey.glb", "rabbit.obj"]
UP = np.array([0.0, 1.0, 0.0])


def rotated(mesh, rotation):
    transform = np.eye(4)
    transform[:3, :3] = rotation
    return apply_transform(mesh, transform)


def up_error(total: np.ndarray, sym: np.ndarray) -> float:
    """Degrees between total @ up and the nearest S @ up over the shape's symmetries S."""
    u = total @ UP
    return float(min(np.degrees(np.arccos(np.clip(u @ (s @ UP), -1, 1))) for s in ROTATIONS[sym]))


def exact(total: np.ndarray, points: np.ndarray, tree: cKDTree) -> bool:
    return bool(tree.query(points @ total.T)[0].mean() < 0.03)


def procedural(scorer, per_family: int, rng) -> dict:
    rows = {}
    for family in FAMILIES:
        hits = {"group": 0, "arbitrary_up": 0, "arbitrary_exact": 0, "n": 0}
        for seed in shape_seeds(per_family, 0, "val"):
            mesh, _ = generate_shape(family, seed)
            dense = sample_surface(mesh, 16384, seed).points
            dense -= dense.mean(0)
            sym, tree = symmetries(dense), cKDTree(dense)
            g = ROTATIONS[rng.integers(24)]
            result = align_pose(rotated(mesh, g), scorer, seed)
            hits["group"] += exact(result.rotation @ g, dense, tree)
            a = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
            result = align_pose(rotated(mesh, a), scorer, seed)
            hits["arbitrary_up"] += up_error(result.rotation @ a, sym) <= 10.0
            hits["arbitrary_exact"] += exact(result.rotation @ a, dense, tree)
            hits["n"] += 1
        rows[family] = hits
    return rows


def real(scorer, rng, data: Path) -> list[dict]:
    rows = []
    for name in UPRIGHT:
        mesh, _ = normalize(load_mesh(data / name))
        no_sym = np.zeros(24, dtype=bool)
        no_sym[0] = True  # real meshes: only the identity counts
        errors = {"as_loaded": up_error(align_pose(mesh, scorer).rotation, no_sym)}
        g = ROTATIONS[rng.integers(24)]
        errors["group"] = up_error(align_pose(rotated(mesh, g), scorer).rotation @ g, no_sym)
        a = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
        errors["arbitrary"] = up_error(align_pose(rotated(mesh, a), scorer).rotation @ a, no_sym)
        rows.append({"mesh": name, **errors})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=10)
    parser.add_argument("--scorers", nargs="+", default=list(SCORERS))
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "meshes"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name in args.scorers:
        scorer = SCORERS[name]()
        start = time.time()
        proc = procedural(scorer, args.per_family, np.random.default_rng(0))
        reals = real(scorer, np.random.default_rng(1), Path(args.data)) if Path(args.data).exists() else []
        if args.json:
            print(json.dumps({"scorer": name, "procedural": proc, "real": reals}))
            continue
        n = sum(r["n"] for r in proc.values())
        total = {k: sum(r[k] for r in proc.values()) for k in ("group", "arbitrary_up", "arbitrary_exact")}
        print(f"\n# scorer {name}: {n} held-out procedural shapes, {platform.machine()}, "
              f"{time.strftime('%Y-%m-%d')}, {time.time() - start:.0f} s")
        print("| family | 24-group exact | SO(3) up <= 10 deg | SO(3) exact |\n|---|---|---|---|")
        for family, r in proc.items():
            n_f = r["n"]
            print(f"| {family} | {r['group']}/{n_f} | {r['arbitrary_up']}/{n_f} | {r['arbitrary_exact']}/{n_f} |")
        print(f"| **all** | **{total['group'] / n:.1%}** | **{total['arbitrary_up'] / n:.1%}** | "
              f"{total['arbitrary_exact'] / n:.1%} |")
        if reals:
            print("\n| real mesh (upright) | up error as loaded | after 24-group rotation | after SO(3) rotation |")
            print("|---|---|---|---|")
            for r in reals:
                print(f"| {r['mesh']} | {r['as_loaded']:.1f} | {r['group']:.1f} | {r['arbitrary']:.1f} |")


if __name__ == "__main__":
    main()
