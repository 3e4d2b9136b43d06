"""Benchmark: winding-number occupancy (gen3d) vs ray-parity majority vote (oracle), agreement and points/s.

    python tools/bench/occupancy.py [--points 100000] [--json]

Agreement is scored separately on uniform points in [-1, 1]^3 and on points within 0.02 of the
surface (where inside/outside is hardest), for the open bunny and for spot.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.fields import occupancy, unsigned_distance  # noqa: E402
from gen3d.geometry.io import load_mesh  # noqa: E402
from gen3d.geometry.transform import normalize  # noqa: E402
from tests.oracles import near_surface_points, ray_parity_inside  # noqa: E402

MESHES = REPO.parent / "shared" / "data" / "meshes"


def timed(fn, *args, repeats: int = 3):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return result, best


def bench(name: str, num_points: int) -> dict:
    mesh, _ = normalize(load_mesh(MESHES / name))
    uniform = np.random.default_rng(0).uniform(-1, 1, size=(num_points, 3))
    near = near_surface_points(mesh, num_points, band=0.02, seed=1)
    near = near[unsigned_distance(mesh, near)[0] <= 0.02]
    row = {"mesh": name, "faces": mesh.num_faces}
    for label, points in (("uniform", uniform), ("near", near)):
        ours, t_ours = timed(occupancy, mesh, points)
        ref, t_ref = timed(ray_parity_inside, mesh, points, repeats=1)
        row[f"{label}_points"] = len(points)
        row[f"{label}_agreement"] = float((ours == ref).mean())
        row[f"{label}_wn_points_per_s"] = len(points) / t_ours
        row[f"{label}_rays7_points_per_s"] = len(points) / t_ref
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [bench(name, args.points) for name in ("stanford-bunny.obj", "spot.obj")]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"# occupancy benchmark, {platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}")
    print("| mesh | faces | set | points | agreement | winding number (points/s) | ray parity x7 (points/s) | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for label in ("uniform", "near"):
            wn, ray = r[f"{label}_wn_points_per_s"], r[f"{label}_rays7_points_per_s"]
            print(f"| {r['mesh']} | {r['faces']} | {label} | {r[f'{label}_points']} | "
                  f"{100 * r[f'{label}_agreement']:.3f}% | {wn:,.0f} | {ray:,.0f} | {wn / ray:.1f}x |")


if __name__ == "__main__":
    main()
