"""Generated-latent banks for a generator-aware decoder fine-tune: the image-conditioned DiT's own
samples of its training set (one per asset and condition view, the generation defaults' sampler), each
stored with its asset's name and the quarter turn about +Y under which the decoder's reading of it
best matches the asset's true occupancy. Training the VAE's decoder on them (encoder frozen, so the
DiT's latents stay valid) teaches it to decode what the generator produces, rather than only what the
encoder produces, into the true shape (docs/image_to_3d.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gen3d.utils.files import atomic_write, open_tagged_npz

BANK_FORMAT = "gen3d-generated-latents-1"
TURNS = (0.0, 90.0, 180.0, 270.0)  # degrees about +Y, the condition ring's quarter turns
TURN_MARGIN = 0.02  # a turn replaces none only when it matches the truth by this much more IoU
TURN_QUERIES = 4096  # of each asset's query points (mostly near its surface) judge the turn


def turn_points(points: torch.Tensor, degrees: float) -> torch.Tensor:
    """(..., 3) points turned about +Y by `degrees` (+Z toward +X, like the ring's azimuths)."""
    t = np.radians(degrees)
    c, s = float(np.cos(t)), float(np.sin(t))
    x, y, z = points.unbind(-1)
    return torch.stack([c * x + s * z, y, -s * x + c * z], -1)


@torch.no_grad()
def best_turns(vae, latents: torch.Tensor, queries: torch.Tensor, inside: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Per latent (B, d_z, r, 3r), with its asset's query points (B, M, 3) and their truth (B, M) bool:
    the turn R (degrees) for which the decoded shape at R q best matches the truth at q by IoU (no turn
    unless one beats it by TURN_MARGIN), and that IoU. A sample generated a quarter turn off is then
    trained toward the truth turned alike, so the decoder learns shapes, not a change of pose."""
    planes = vae.decode(latents)  # (B, 3, C, R, R)
    ious = []
    for degrees in TURNS:
        occupied = vae.query(planes, turn_points(queries, degrees)) > 0  # (B, M)
        ious.append((occupied & inside).sum(1) / (occupied | inside).sum(1).clamp(min=1))  # (B,)
    ious = torch.stack(ious, 1).float().numpy()  # (B, turns)
    best = ious.argmax(1)
    best = np.where(ious[np.arange(len(best)), best] - ious[:, 0] > TURN_MARGIN, best, 0)
    return np.asarray(TURNS)[best], ious[np.arange(len(best)), best]


def truth_queries(folders: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, TURN_QUERIES, 3) query points of each prepared asset folder (a fixed subset of its queries.npz;
    a folder listed several times is read once) and their truth (B, M) bool."""
    picked = {}
    for folder in dict.fromkeys(folders):
        with np.load(folder / "queries.npz") as stored:
            points, sdf = stored["points"].astype(np.float32), stored["sdf"].astype(np.float32)
        pick = np.random.default_rng(0).choice(len(points), TURN_QUERIES, replace=len(points) < TURN_QUERIES)
        picked[folder] = points[pick], sdf[pick] < 0
    queries = np.stack([picked[folder][0] for folder in folders])  # (B, M, 3)
    inside = np.stack([picked[folder][1] for folder in folders])  # (B, M)
    return torch.from_numpy(queries), torch.from_numpy(inside)


def write_bank(model, data: str | Path | list, out: str | Path, *, views: int = 4, seed: int = 100_000,
               batch: int = 64, progress: bool = True) -> Path:
    """Sample a loaded ImageTo3D `model`'s DiT with its generation defaults (sampler, steps, guidance) on
    every train-split asset's first `views` condition images (seed + asset index * views + view each), judge
    each latent's turn with its VAE, and store the latents (float16), turns and IoUs with the names in `out`."""
    from gen3d.train.dit import condition_image
    from gen3d.train.vae import prepared_assets

    assets = prepared_assets(data, "train")
    s, sampler = model.settings, model.latents
    items = [(a, v) for a in range(len(assets)) for v in range(views)]
    latents, turns, ious = [], [], []
    for start in tqdm(range(0, len(items), batch), desc="generated latents", unit="batch", disable=not progress):
        chunk = items[start: start + batch]
        images = np.stack([condition_image(assets[a], v, sampler.image_size) for a, v in chunk])
        pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)  # (b, 3, S, S)
        z = sampler(pixels, [seed + a * views + v for a, v in chunk], sampler=s.sampler, steps=s.steps,
                    guidance=s.guidance)  # (b, d_z, r, 3r)
        queries, inside = truth_queries([assets[a] for a, _ in chunk])
        turn, iou = best_turns(model.vae, z, queries, inside)
        latents.append(z.half().numpy())
        turns.append(turn)
        ious.append(iou)
    settings = {"model_id": model.model_id, "views": views, "sampler": s.sampler, "steps": s.steps,
                "guidance": s.guidance, "seed": seed}
    shape = (len(assets), views)
    arrays = {"format": np.array(BANK_FORMAT), "settings": np.array(json.dumps(settings)),
              "names": np.array([a.name for a in assets]),
              "latents": np.concatenate(latents).reshape(*shape, *latents[0].shape[1:]),  # (N, V, d_z, r, 3r)
              "turns": np.concatenate(turns).reshape(shape).astype(np.float32),  # (N, V) degrees
              "ious": np.concatenate(ious).reshape(shape).astype(np.float32)}  # (N, V)
    return atomic_write(out, lambda stream: np.savez(stream, **arrays))


class GeneratedBank:
    """A bank's latents and turns by asset name (float32 torch tensors on request)."""

    def __init__(self, path: str | Path):
        with open_tagged_npz(path, BANK_FORMAT, "generated-latent bank") as stored:
            self.latents, self.turns = stored["latents"], stored["turns"]  # (N, V, d_z, r, 3r), (N, V)
            self.ious = stored["ious"]  # (N, V)
            self.index = {str(name): k for k, name in enumerate(stored["names"])}

    @property
    def views(self) -> int:
        return self.latents.shape[1]

    def get(self, name: str, view: int) -> tuple[torch.Tensor, float]:
        """(d_z, r, 3r) latent and its turn in degrees."""
        k = self.index[name]
        return torch.from_numpy(self.latents[k, view].astype(np.float32)), float(self.turns[k, view])
