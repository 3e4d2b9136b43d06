"""Benchmark: precision and recall of the data-preparation filters on a synthetic corruption set.

    python tools/bench/curate_filters.py [--per-kind 12] [--clean 48] [--workers 2] [--keep DIR] [--json]

The set (built by this script, seeded): clean procedural shapes from the val seed range, and
corruptions with a known expected reason — cards/billboards (flat), sticks (extreme_aspect),
scattered multi-object scenes (scene), triangle soups and exploded meshes (soup), small fragments
(too_few_faces or tiny), collapsed meshes (degenerate), and copies of clean shapes that are
re-ordered, re-exported to another format, and rotated/scaled/moved (duplicate: one member of each
group must stay ok). It runs `gen3d.stages.curate.job.prepare` on the set and scores each reason.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.procedural import FAMILIES, generate_shape, shape_seeds  # noqa: E402
from gen3d.stages.curate.config import OutputConfig, PrepareConfig  # noqa: E402
from gen3d.stages.curate.job import prepare  # noqa: E402

FRAGMENT_REASONS = ("too_few_faces", "tiny")


def _trimesh(mesh) -> trimesh.Trimesh:
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


def _random_pose(tm: trimesh.Trimesh, rng) -> trimesh.Trimesh:
    out = tm.copy()
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix() * rng.uniform(0.2, 5.0)
    matrix[:3, 3] = rng.normal(size=3) * 3
    out.apply_transform(matrix)
    return out


def build(folder: Path, per_kind: int, clean: int, seed: int = 0) -> dict[str, dict]:
    """Write the set into `folder`; returns file name -> {"kind", "expected", "group"}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict] = {}
    families = list(FAMILIES)

    def put(name: str, tm: trimesh.Trimesh, kind: str, expected: str, group: str | None = None) -> None:
        tm.export(folder / name)
        truth[name] = {"kind": kind, "expected": expected, "group": group}

    seeds = shape_seeds(clean + per_kind, 500, "val")
    for i in range(clean):
        mesh, _ = generate_shape(families[i % len(families)], seeds[i])
        put(f"clean_{i:03d}.obj", _trimesh(mesh), "clean", "ok")
    for i in range(per_kind):
        size = rng.uniform(0.5, 2.0, size=2)
        if i % 2:
            card = trimesh.creation.box([size[0], size[1], rng.uniform(0.0005, 0.01)])
        else:  # a subdivided billboard quad
            card = trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(
                np.array([[0, 0, 0], [size[0], 0, 0], [size[0], size[1], 0], [0, size[1], 0.0]]),
                np.array([[0, 1, 2], [0, 2, 3]]), max_edge=0.2))
        put(f"card_{i:03d}.ply", _random_pose(card, rng), "card", "flat")
        stick = trimesh.creation.cylinder(radius=rng.uniform(0.002, 0.02), height=rng.uniform(1.5, 3.0), sections=12)
        put(f"stick_{i:03d}.stl", _random_pose(stick, rng), "stick", "extreme_aspect")
        parts = []
        for j in range(int(rng.integers(4, 8))):
            mesh, _ = generate_shape(families[int(rng.integers(len(families)))], seeds[clean + i] + 1000 * j)
            part = _trimesh(mesh)
            part.apply_scale(rng.uniform(0.3, 0.6))
            part.apply_translation([rng.uniform(-6, 6), 0, rng.uniform(-6, 6)])
            parts.append(part)
        put(f"scene_{i:03d}.glb", trimesh.util.concatenate(parts), "scene", "scene")
        count = int(rng.integers(60, 400))
        if i % 2:
            soup = trimesh.Trimesh(rng.normal(size=(3 * count, 3)), np.arange(3 * count).reshape(count, 3),
                                   process=False)
        else:  # an exploded shape: every face on its own, pushed out along its normal
            mesh, _ = generate_shape(families[i % len(families)], seeds[clean + i])
            tri = mesh.vertices[mesh.faces]  # (F, 3, 3)
            normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
            tri = tri + normals[:, None] * rng.uniform(0.02, 0.2, size=(len(tri), 1, 1))
            soup = trimesh.Trimesh(tri.reshape(-1, 3), np.arange(tri.size // 3).reshape(-1, 3), process=False)
        put(f"soup_{i:03d}.obj", soup, "soup", "soup")
        if i % 2:
            fragment = trimesh.Trimesh(rng.normal(size=(4, 3)), [[0, 1, 2], [1, 2, 3]], process=False)
        else:  # a sliver strip: many faces, almost no area for its length
            x = np.linspace(0, 2, 40)
            top = np.stack([x, np.full_like(x, 1e-4), rng.normal(size=40) * 1e-3], 1)
            bottom = np.stack([x, np.zeros_like(x), np.zeros_like(x)], 1)
            faces = [[k, k + 1, 40 + k] for k in range(39)] + [[k + 1, 41 + k, 40 + k] for k in range(39)]
            fragment = trimesh.Trimesh(np.concatenate([bottom, top]), faces, process=False)
        put(f"fragment_{i:03d}.ply", _random_pose(fragment, rng), "fragment", "fragment")
        mesh, _ = generate_shape(families[i % len(families)], seeds[clean + i])
        collapsed = _trimesh(mesh)
        keep = rng.random(len(collapsed.faces)) < 0.3
        faces = collapsed.faces.copy()
        faces[~keep, 2] = faces[~keep, 1]  # 70% of faces collapse to segments
        put(f"collapsed_{i:03d}.obj", trimesh.Trimesh(collapsed.vertices, faces, process=False), "collapsed",
            "degenerate")
    for i in range(per_kind):  # duplicate groups of clean shapes (each original is in the clean set)
        original = f"clean_{i:03d}.obj"
        mesh, _ = generate_shape(families[i % len(families)], seeds[i])
        tm = _trimesh(mesh)
        truth[original]["group"] = original
        order = rng.permutation(len(tm.faces))
        reordered = trimesh.Trimesh(tm.vertices, tm.faces[order][:, [1, 2, 0]], process=False)
        put(f"dup_{i:03d}_reordered.obj", reordered, "duplicate", "duplicate", original)
        put(f"dup_{i:03d}_reexported.{('glb', 'ply', 'stl')[i % 3]}", tm, "duplicate", "duplicate", original)
        put(f"dup_{i:03d}_moved.glb", _random_pose(tm, rng), "duplicate", "duplicate", original)
    return truth


def score(rows: list[dict], truth: dict[str, dict]) -> dict[str, dict]:
    """Per reason: precision, recall, support. In a duplicate group the member kept counts as `ok`."""
    predicted = {r["source"]: ("fragment" if r["reason"] in FRAGMENT_REASONS else (r["reason"] or "ok"))
                 for r in rows}
    expected = {name: t["expected"] for name, t in truth.items()}
    groups: dict[str, list[str]] = {}
    for name, t in truth.items():
        if t["group"]:
            groups.setdefault(t["group"], []).append(name)
    for members in groups.values():
        kept = [m for m in members if predicted[m] == "ok"]
        if len(kept) == 1:
            for m in members:
                expected[m] = "ok" if m == kept[0] else "duplicate"
    labels = sorted(set(expected.values()) | set(predicted.values()))
    table = {}
    for label in labels:
        tp = sum(predicted[n] == label and expected[n] == label for n in expected)
        pred, true = sum(p == label for p in predicted.values()), sum(e == label for e in expected.values())
        table[label] = {"precision": tp / pred if pred else None, "recall": tp / true if true else None,
                        "support": true, "predicted": pred}
    confusions = Counter((expected[n], predicted[n]) for n in expected if expected[n] != predicted[n])
    table["_confusions"] = {f"{a} -> {b}": c for (a, b), c in confusions.most_common()}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=12)
    parser.add_argument("--clean", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", default=None, help="write the set here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.clean < args.per_kind:
        parser.error("--clean must be >= --per-kind (duplicate groups copy clean shapes)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "set"
        truth = build(folder, args.per_kind, args.clean)
        cfg = PrepareConfig(output=OutputConfig(surface_points=2048, uniform_queries=1000, near_queries=1000,
                                                render_views=0), pose="none")
        start = time.time()
        prepare(folder, Path(tmp) / "out", cfg, workers=args.workers, force=True)
        rows = [json.loads(line) for line in (Path(tmp) / "out" / "manifest.jsonl").read_text().splitlines()]
        seconds = time.time() - start
    table = score(rows, truth)
    if args.json:
        print(json.dumps({"assets": len(rows), "seconds": seconds, "table": table}))
        return
    print(f"# filter quality: {len(rows)} assets ({args.clean} clean, {args.per_kind} per corruption kind, "
          f"{args.per_kind} duplicate groups of 4), {platform.machine()}, {time.strftime('%Y-%m-%d')}, "
          f"{seconds:.0f} s with {args.workers} workers")
    print("| reason | precision | recall | expected | predicted |\n|---|---|---|---|---|")
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for label, r in table.items():
        if not label.startswith("_"):
            print(f"| {label} | {fmt(r['precision'])} | {fmt(r['recall'])} | {r['support']} | {r['predicted']} |")
    print("\nconfusions (expected -> predicted):", table["_confusions"] or "none")


if __name__ == "__main__":
    main()
