"""`gen3d data prepare`: raw asset folder -> filtered, pose-aligned, normalized training data
(CONVENTIONS "Prepared data"). `process_asset` is the per-asset work any executor runs;
`prepare` is the resumable job around it (inputs, resume, duplicates, manifest, summary)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen3d.errors import InputError
from gen3d.geometry.cleanup import cleanup
from gen3d.geometry.fields import signed_distance
from gen3d.geometry.io import load_mesh
from gen3d.geometry.sampling import sample_surface
from gen3d.geometry.transform import apply_transform, normalize
from gen3d.geometry.validate import degenerate_faces
from gen3d.stages.curate.config import PrepareConfig
from gen3d.stages.curate.dedup import fingerprint
from gen3d.stages.curate.filters import first_failure, measure
from gen3d.utils.config import from_dict
from gen3d.utils.files import atomic_write

MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
ALWAYS_VAL = ("cow.obj", "teapot.obj", "rabbit.obj")  # CONVENTIONS: never trained on
DUPLICATES = ".duplicates"  # accepted-then-deduplicated folders are parked here, not deleted


@dataclass
class Task:
    """One input for a worker (plain values: it crosses process and Ray boundaries)."""

    source: str  # relative to SRC, POSIX
    path: str  # absolute
    id: str
    out: str  # the job's OUT folder
    config: dict
    config_hash: str


def find_inputs(src: Path) -> list[Path]:
    """Mesh files under `src` (recursively, extension in any case), or listed one per line in a
    text file `src`; sidecars (.mtl, textures) are not inputs. Sorted by relative path."""
    if src.is_file() and src.suffix.lower() in (".txt", ".lst"):
        lines = [line.strip() for line in src.read_text().splitlines()]
        return sorted({(src.parent / line).resolve() for line in lines if line and not line.startswith("#")})
    if not src.is_dir():
        raise InputError("missing_file", f"{src}: not a folder or a list of files")
    return sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in MESH_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(src).parts))


def asset_id(path: Path) -> str:
    """First 16 hex digits of the SHA-1 of the file's bytes (CONVENTIONS)."""
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def split_of(identifier: str, source: str) -> str:
    if Path(source).name in ALWAYS_VAL or int(identifier, 16) % 10 == 0:
        return "val"
    return "train"


def asset_seed(identifier: str, seed: int) -> int:
    """Per-asset randomness from the id, so results do not depend on order, executor or workers."""
    return (int(identifier, 16) + seed * 1_000_003) % (2**63)


# ---------------------------------------------------------------- one asset


def process_asset(task: Task, scorer=None) -> dict:
    """Load, filter, align, normalize and write one asset; returns its manifest row (never raises
    for bad input: the row says rejected/failed with a reason)."""
    cfg = from_dict(PrepareConfig, task.config)
    seed = asset_seed(task.id, cfg.seed)
    row = {"source": task.source, "id": task.id, "status": "ok", "reason": None,
           "split": split_of(task.id, task.source), "measured": {}, "rotation": None, "timings": {}}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        row["timings"][name] = round(now - clock, 4)
        clock = now

    try:
        mesh = load_mesh(task.path, max_faces=cfg.filters.max_faces)  # validates too (reason codes)
        if mesh.warnings:  # recorded per row instead of logged by each worker
            row["warnings"] = sorted({w.code for w in mesh.warnings})
        degenerate_share = float(degenerate_faces(mesh).mean())
        row["measured"]["degenerate_share"] = round(degenerate_share, 6)
        if degenerate_share > cfg.filters.max_degenerate_share:
            return {**row, "status": "rejected", "reason": "degenerate"}
        mesh, _ = cleanup(mesh)
        lap("load")
        values = measure(mesh, cfg.filters, seed)
        row["measured"].update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()})
        row["measured"]["textured"] = bool(mesh.has_texture)
        reason = first_failure(values, cfg.filters)
        if reason is not None:
            return {**row, "status": "rejected", "reason": reason}
        signature = fingerprint(mesh, seed)
        lap("filter")
        rotation, confidence = np.eye(3), 1.0
        if cfg.pose != "none":
            from gen3d.stages.curate.pose import SCORERS, align_pose

            result = align_pose(mesh, scorer or SCORERS[cfg.pose](), seed)
            rotation, confidence = result.rotation, result.confidence
        row["rotation"] = rotation.round(9).tolist()
        row["measured"]["pose_confidence"] = round(confidence, 4)
        turn = np.eye(4)
        turn[:3, :3] = rotation
        mesh, normalization = normalize(apply_transform(mesh, turn))
        lap("align")
        _write_outputs(task, cfg, mesh, normalization, rotation, signature, seed, row, lap)
        return row
    except InputError as error:
        return {**row, "status": "rejected", "reason": error.reason, "message": error.message}
    except MemoryError:
        return {**row, "status": "failed", "reason": "memory", "message": "out of memory (memory guard)"}
    except Exception as error:  # noqa: BLE001 - one bad asset must not stop the job; the row says why
        return {**row, "status": "failed", "reason": "error", "message": f"{type(error).__name__}: {error}"}


def _write_outputs(task: Task, cfg: PrepareConfig, mesh, normalization, rotation, signature, seed, row, lap) -> None:
    """Write the asset folder under a temporary name, then rename it into place."""
    out = Path(task.out)
    temp = out / f".tmp-{task.id}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    surface = sample_surface(mesh, cfg.output.surface_points, rng)
    np.savez(temp / "surface.npz", points=surface.points.astype(np.float32),
             normals=surface.normals.astype(np.float32))
    queries = _query_points(mesh, cfg, rng)
    np.savez(temp / "queries.npz", points=queries.astype(np.float32),
             sdf=signed_distance(mesh, queries).astype(np.float32))
    lap("samples")
    if cfg.output.render_views > 0:
        from gen3d.render.cameras import orbit_cameras
        from gen3d.render.views import render_mesh, write_views

        out_cfg = cfg.output
        count = out_cfg.render_views
        cameras = orbit_cameras([out_cfg.render_elevation] * count, list(np.arange(count) * 360.0 / count),
                                radius=out_cfg.render_radius, fov_deg=out_cfg.render_fov_deg, width=out_cfg.render_res)
        write_views(render_mesh(mesh, cameras, backend=out_cfg.render_backend), cameras, temp / "views")
        lap("render")
    meta = {"id": task.id, "source": task.source, "config_hash": task.config_hash, "seed": seed,
            "rotation": row["rotation"], "normalization": np.asarray(normalization).tolist(),
            "fingerprint": [float(v) for v in signature], "row": row}
    (temp / "meta.json").write_text(json.dumps(meta))
    final = out / task.id
    if final.exists():  # an identical file under another name was processed already
        shutil.rmtree(temp)
        return
    os.replace(temp, final)


def _query_points(mesh, cfg: PrepareConfig, rng: np.random.Generator) -> np.ndarray:
    """Uniform points in [-1, 1]^3 plus surface samples moved by Gaussian offsets (two scales)."""
    uniform = rng.uniform(-1.0, 1.0, size=(cfg.output.uniform_queries, 3))
    near = sample_surface(mesh, cfg.output.near_queries, rng).points
    scales = np.repeat(np.asarray(cfg.output.near_sigmas, dtype=np.float64),
                       -(-len(near) // len(cfg.output.near_sigmas)))[: len(near)]
    near = near + rng.normal(size=near.shape) * scales[:, None]
    return np.concatenate([uniform, near])


def failed_row(task: Task, reason: str, message: str) -> dict:
    """The row of an asset whose worker was stopped (timeout, memory) or died."""
    return {"source": task.source, "id": task.id, "status": "failed", "reason": reason, "message": message,
            "split": split_of(task.id, task.source), "measured": {}, "rotation": None, "timings": {}}


def write_json(path: Path, document) -> None:
    atomic_write(path, lambda stream: stream.write(json.dumps(document, indent=1).encode()))
