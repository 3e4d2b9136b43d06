"""Seeded procedural shapes: watertight, canonically posed (+Y up, front +Z) training data.

Each family draws at least three continuous parameters from a seeded generator; composites
(tables, chairs, lamps, mugs, shelves) are boolean unions (manifold3d) of primitives, so every
shape is one closed, consistently wound surface. Train and val use disjoint seed ranges.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import trimesh

from gen3d.geometry.transform import normalize
from gen3d.types import Mesh
from gen3d.utils.files import atomic_write

VAL_SEED_OFFSET = 1_000_000  # val seeds are VAL_SEED_OFFSET + i, train seeds are i < VAL_SEED_OFFSET
SECTIONS = 48

Z_TO_Y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])  # maps +Z to +Y


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _box(size, center) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=size, transform=trimesh.transformations.translation_matrix(center))


def _cylinder_y(radius: float, height: float, center=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=SECTIONS, transform=Z_TO_Y)
    mesh.apply_translation(center)
    return mesh


def _revolve_y(profile: list[tuple[float, float]]) -> trimesh.Trimesh:
    """Solid of revolution about +Y of a closed (radius, height) profile starting and ending on the axis."""
    mesh = trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=SECTIONS)
    mesh.apply_transform(Z_TO_Y)
    return mesh


def _union(parts: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    return trimesh.boolean.union(parts, engine="manifold")


def rounded_box(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(width=_u(rng, 0.4, 1.0), height=_u(rng, 0.3, 1.0), depth=_u(rng, 0.4, 1.0), bevel=_u(rng, 0.02, 0.12))
    r = min(p["bevel"], 0.45 * min(p["width"], p["height"], p["depth"]))
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=r)
    half = np.array([p["width"], p["height"], p["depth"]]) / 2 - r
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    points = (corners[:, None, :] + sphere.vertices[None]).reshape(-1, 3)
    return trimesh.convex.convex_hull(points), p


def cylinder(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(radius_x=_u(rng, 0.15, 0.5), radius_z=_u(rng, 0.15, 0.5), height=_u(rng, 0.3, 1.2))
    mesh = _cylinder_y(1.0, p["height"])
    mesh.apply_scale([p["radius_x"], 1.0, p["radius_z"]])
    return mesh, p


def frustum(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(bottom_radius=_u(rng, 0.2, 0.6), top_radius=_u(rng, 0.0, 0.4), height=_u(rng, 0.3, 1.2))
    h, r0, r1 = p["height"], p["bottom_radius"], max(p["top_radius"], 1e-3)
    return _revolve_y([(0, 0), (r0, 0), (r1, h), (0, h)]), p


def torus(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(major_radius=_u(rng, 0.3, 0.6), minor_ratio=_u(rng, 0.15, 0.45), squash=_u(rng, 0.6, 1.4))
    mesh = trimesh.creation.torus(p["major_radius"], p["major_radius"] * p["minor_ratio"], SECTIONS, 24)
    mesh.apply_transform(Z_TO_Y)  # ring lies flat, axis along +Y
    mesh.apply_scale([1.0, p["squash"], 1.0])
    return mesh, p


def capsule(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(radius=_u(rng, 0.1, 0.35), length=_u(rng, 0.2, 1.0), stretch_x=_u(rng, 0.7, 1.3))
    mesh = trimesh.creation.capsule(height=p["length"], radius=p["radius"], count=[SECTIONS, SECTIONS // 2])
    mesh.apply_transform(Z_TO_Y)
    mesh.apply_scale([p["stretch_x"], 1.0, 1.0])
    return mesh, p


def vase(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(height=_u(rng, 0.8, 1.5), base_radius=_u(rng, 0.12, 0.3), belly_radius=_u(rng, 0.25, 0.5),
             neck_radius=_u(rng, 0.06, 0.2), belly_height=_u(rng, 0.25, 0.55))
    h = p["height"]
    t = np.linspace(0.0, 1.0, 16)
    # Radius: a smooth blend from base to belly to neck, flaring slightly at the lip.
    knots_t = [0.0, p["belly_height"], 0.85, 1.0]
    knots_r = [p["base_radius"], p["belly_radius"], p["neck_radius"], p["neck_radius"] * 1.25]
    radius = np.interp(t, knots_t, knots_r)
    radius = np.convolve(np.pad(radius, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    profile = [(0.0, 0.0)] + [(float(r), float(y * h)) for r, y in zip(radius, t)] + [(0.0, h)]
    return _revolve_y(profile), p


def cup(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(height=_u(rng, 0.5, 1.1), bottom_radius=_u(rng, 0.2, 0.35), top_radius=_u(rng, 0.3, 0.5),
             wall=_u(rng, 0.03, 0.07))
    return _cup_body(p), p


def _cup_body(p: dict) -> trimesh.Trimesh:
    h, r0, r1, w = p["height"], p["bottom_radius"], p["top_radius"], p["wall"]
    base = w * 1.5
    inner_bottom = r0 + (r1 - r0) * base / h - w
    profile = [(0.0, 0.0), (r0, 0.0), (r1, h), (r1 - w, h), (inner_bottom, base), (0.0, base)]
    return _revolve_y(profile)


def mug(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(height=_u(rng, 0.6, 1.0), radius=_u(rng, 0.25, 0.4), wall=_u(rng, 0.03, 0.06),
             handle_size=_u(rng, 0.15, 0.3), handle_thickness=_u(rng, 0.03, 0.06))
    body = _cup_body(dict(height=p["height"], bottom_radius=p["radius"], top_radius=p["radius"], wall=p["wall"]))
    handle = trimesh.creation.torus(p["handle_size"], p["handle_thickness"], SECTIONS, 16)  # ring in XY plane
    handle.apply_translation([p["radius"], p["height"] / 2, 0.0])
    # Keep only the part of the ring outside the cup's cavity.
    cavity = _cylinder_y(p["radius"] - p["wall"] / 2, 2 * p["height"], (0, p["height"], 0))
    handle = trimesh.boolean.difference([handle, cavity], engine="manifold")
    return _union([body, handle]), p


def _top_on_legs(width: float, depth: float, height: float, thickness: float, leg: float) -> list[trimesh.Trimesh]:
    """A slab whose top is at `height`, on four square legs inset at its corners (tables, seats)."""
    parts = [_box((width, thickness, depth), (0, height - thickness / 2, 0))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            center = (sx * (width / 2 - leg), (height - thickness) / 2, sz * (depth / 2 - leg))
            parts.append(_box((leg, height - thickness + 0.01, leg), center))  # overlaps the slab by 0.01
    return parts


def table(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(width=_u(rng, 0.8, 1.6), depth=_u(rng, 0.5, 1.0), height=_u(rng, 0.5, 1.0),
             top_thickness=_u(rng, 0.03, 0.1), leg_thickness=_u(rng, 0.04, 0.12))
    parts = _top_on_legs(p["width"], p["depth"], p["height"], p["top_thickness"], p["leg_thickness"])
    return _union(parts), p


def chair(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    """A chair facing +Z: the backrest stands at the -Z edge of the seat."""
    p = dict(seat_width=_u(rng, 0.4, 0.6), seat_height=_u(rng, 0.35, 0.55), back_height=_u(rng, 0.3, 0.6),
             leg_thickness=_u(rng, 0.03, 0.07), seat_thickness=_u(rng, 0.03, 0.08))
    w, sh, bh, leg, st = p["seat_width"], p["seat_height"], p["back_height"], p["leg_thickness"], p["seat_thickness"]
    parts = _top_on_legs(w, w, sh, st, leg)
    parts.append(_box((w, bh + 0.01, st), (0, sh + bh / 2 - 0.005, -w / 2 + st / 2)))
    return _union(parts), p


def lamp(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    p = dict(base_radius=_u(rng, 0.15, 0.3), pole_height=_u(rng, 0.5, 1.2), shade_bottom=_u(rng, 0.2, 0.4),
             shade_top=_u(rng, 0.08, 0.2), shade_height=_u(rng, 0.15, 0.35))
    base_h, pole_r = 0.04, 0.02
    parts = [
        _cylinder_y(p["base_radius"], base_h, (0, base_h / 2, 0)),
        _cylinder_y(pole_r, p["pole_height"], (0, base_h + p["pole_height"] / 2 - 0.005, 0)),
    ]
    y0 = base_h + p["pole_height"] - 0.05
    shade = _revolve_y([(0, 0), (p["shade_bottom"], 0), (p["shade_top"], p["shade_height"]), (0, p["shade_height"])])
    shade.apply_translation([0, y0, 0])
    parts.append(shade)
    return _union(parts), p


def shelf(rng: np.random.Generator) -> tuple[trimesh.Trimesh, dict]:
    """A bookshelf open toward +Z: side panels, a back panel at -Z and evenly spaced boards."""
    p = dict(width=_u(rng, 0.5, 1.2), height=_u(rng, 0.6, 1.6), depth=_u(rng, 0.2, 0.45),
             board_thickness=_u(rng, 0.02, 0.05), num_boards=int(rng.integers(2, 6)))
    w, h, d, t, n = p["width"], p["height"], p["depth"], p["board_thickness"], p["num_boards"]
    parts = [_box((t, h, d), (sx * (w / 2 - t / 2), h / 2, 0)) for sx in (-1, 1)]
    parts.append(_box((w, h, t), (0, h / 2, -d / 2 + t / 2)))
    for i in range(n):
        y = t / 2 + i * (h - t) / (n - 1)
        parts.append(_box((w - 0.002, t, d), (0, y, 0)))
    return _union(parts), p


# Family name -> generator (a plain dict, per CONVENTIONS "Choices by name").
FAMILIES: dict[str, Callable[[np.random.Generator], tuple[trimesh.Trimesh, dict]]] = {
    "rounded_box": rounded_box,
    "cylinder": cylinder,
    "frustum": frustum,
    "torus": torus,
    "capsule": capsule,
    "vase": vase,
    "cup": cup,
    "mug": mug,
    "table": table,
    "chair": chair,
    "lamp": lamp,
    "shelf": shelf,
}


def generate_shape(family: str, seed: int) -> tuple[Mesh, dict]:
    """One shape of `family` from `seed`, normalized to the CONVENTIONS frame; returns (mesh, params)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    raw, params = FAMILIES[family](np.random.default_rng(seed))
    mesh, _ = normalize(Mesh(vertices=raw.vertices, faces=raw.faces))
    return mesh, params


def shape_seeds(count: int, seed: int, split: str) -> list[int]:
    """Seeds for `count` shapes starting at `seed`, in the split's disjoint range."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    if not (0 <= seed and seed + count <= VAL_SEED_OFFSET):
        raise ValueError(f"seed range [{seed}, {seed + count}) must lie in [0, {VAL_SEED_OFFSET})")
    base = VAL_SEED_OFFSET if split == "val" else 0
    return [base + seed + i for i in range(count)]


def write_procedural(
    out_dir: str | Path,
    families: Iterable[str],
    count: int,
    seed: int = 0,
    split: str = "train",
    file_format: str = "obj",
    progress: Callable[[Iterable], Iterable] = lambda x: x,
) -> list[dict]:
    """Write `count` shapes, cycling through `families`, as `<family>_<seed>.<format>` plus shapes.jsonl."""
    from gen3d.geometry.export import save_mesh  # export pulls in image codecs; import on use

    families = list(families)
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, shape_seed in enumerate(progress(shape_seeds(count, seed, split))):
        family = families[i % len(families)]
        mesh, params = generate_shape(family, shape_seed)
        name = f"{family}_{shape_seed:07d}.{file_format}"
        save_mesh(mesh, out_dir / name)
        rows.append(dict(file=name, family=family, seed=shape_seed, split=split, params=params))
    atomic_write(out_dir / "shapes.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))
    return rows
