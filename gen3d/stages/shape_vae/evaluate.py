"""`gen3d eval vae`: reconstruct meshes through the VAE and score them (CONVENTIONS metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from gen3d.geometry.io import load_mesh
from gen3d.geometry.metrics import compare_surfaces, volume_iou
from gen3d.geometry.transform import normalize
from gen3d.stages.shape_vae.mesh import encode_mesh, latent_to_mesh
from gen3d.stages.shape_vae.model import BUNDLED_VAE, load_vae

FSCORE_TAU = 0.02


def evaluate_vae(checkpoint: str | Path | None, meshes: list[str], *, resolution: int = 256, seed: int = 0,
                 save_meshes: str | Path | None = None, device: str = "cpu",
                 progress: Callable[[Iterable], Iterable] = lambda x: x) -> dict:
    """Per mesh and mean: volume IoU, Chamfer-L1, F-score@0.02 of the reconstruction vs the normalized input."""
    vae = load_vae(checkpoint, device)
    rows = []
    for path in progress(meshes):
        target, _ = normalize(load_mesh(path))
        z = encode_mesh(vae, target, seed=seed)
        recon, stats = latent_to_mesh(vae, z, resolution=resolution)
        row = {"mesh": str(path), "faces": 0 if recon is None else recon.num_faces,
               "extract_seconds": round(stats.total_seconds, 3)}
        if recon is None:  # the decoder found no surface: the worst score, not an error
            row.update(iou=0.0, chamfer_l1=float("nan"), fscore=0.0)
        else:
            comparison = compare_surfaces(recon, target, seed=seed)
            row.update(iou=volume_iou(recon, target, seed=seed), chamfer_l1=comparison.chamfer_l1,
                       fscore=comparison.fscore(FSCORE_TAU))
            if save_meshes:
                from gen3d.geometry.export import save_mesh

                Path(save_meshes).mkdir(parents=True, exist_ok=True)
                save_mesh(recon, Path(save_meshes) / f"{Path(path).stem}.glb")
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("iou", "chamfer_l1", "fscore")}
    return {"checkpoint": str(checkpoint or BUNDLED_VAE), "resolution": resolution, "fscore_tau": FSCORE_TAU,
            "meshes": rows, "mean": mean}
