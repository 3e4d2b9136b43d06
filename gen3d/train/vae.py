"""Training task of the D3D-VAE: prepared assets -> (surface points, normals, queries, semi-continuous
occupancy labels), BCE + KL loss, validation by occupancy IoU on held-out query points."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gen3d.errors import InputError
from gen3d.geometry.fields import semi_continuous_occupancy
from gen3d.stages.shape_vae.model import D3DVAE, MODEL_TYPE, VAEConfig, preset_config
from gen3d.train.generated import GeneratedBank, turn_points
from gen3d.train.loop import TrainConfig


@dataclass
class VAEDataConfig:
    surface_points: int = 2048  # encoder input points per shape and step (subsampled from surface.npz)
    queries: int = 4096  # labelled query points per shape and step
    label_band: float = 1.0 / 512  # semi-continuous band s (Direct3D: 1/512); 0 = binary labels
    kl_weight: float = 1e-6
    val_assets: int = 64  # validation uses at most this many assets ...
    val_queries: int = 8192  # ... and this many query points each
    include: tuple = ()  # only assets whose manifest `source` matches one of these glob patterns (all if empty)
    generated: str = ""  # a generated-latent bank (`gen3d train bank`): some items decode the DiT's sample instead
    generated_fraction: float = 0.5  # ... this share of the batch items whose asset is in the bank
    repeat: dict = field(default_factory=dict)  # glob pattern on `source` -> times such assets appear per epoch


@dataclass
class VAERunConfig:
    """A `gen3d train vae` YAML: a preset name, model overrides, data and optimisation sections."""

    preset: str = "tiny"
    model: dict = field(default_factory=dict)
    data: VAEDataConfig = field(default_factory=VAEDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def model_config(self) -> VAEConfig:
        return preset_config(self.preset, **self.model)


def prepared_assets(folders: str | Path | list, split: str | None, include: tuple = (),
                    repeat: dict | None = None) -> list[Path]:
    """Asset folders of one or several prepared datasets whose manifest row is ok (and of `split`, and
    matching one of the `include` glob patterns on its source path, when given), folder by folder; with
    `repeat` (glob pattern -> whole number), each asset as many times as the largest factor of the
    patterns its source matches (once if none): oversampling of the shapes a model reconstructs worst."""
    repeat = repeat or {}
    for pattern, times in repeat.items():
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise InputError("bad_config", f"data.repeat[{pattern!r}] = {times!r}: a whole number >= 1")
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    assets = []
    for folder in map(Path, folders):
        manifest = folder / "manifest.jsonl"
        if not manifest.is_file():
            raise InputError("missing_file", f"{folder}: no manifest.jsonl (not a `gen3d data prepare` output)")
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        sources = {r["id"]: r["source"] for r in rows if r["status"] == "ok" and (split is None or r["split"] == split)
                   and (not include or any(fnmatch.fnmatch(r["source"], pattern) for pattern in include))}
        for i in sorted(sources):
            if (folder / i / "surface.npz").is_file():
                times = [n for pattern, n in repeat.items() if fnmatch.fnmatch(sources[i], pattern)]
                assets += [folder / i] * max(times or [1])
    if not assets:
        where = ", ".join(map(str, folders))
        raise InputError("empty", f"{where}: no prepared assets{f' in split {split!r}' if split else ''}"
                         f"{f' matching {list(include)}' if include else ''}")
    return assets


class ShapeSet:
    """Surface samples and SDF queries of prepared assets, held in memory (float32; an asset listed
    several times is loaded once)."""

    def __init__(self, assets: list[Path]):
        self.assets = assets
        self.surface, self.normals, self.queries, self.sdf = [], [], [], []
        loaded: dict[Path, tuple] = {}
        for folder in assets:
            if folder not in loaded:
                with np.load(folder / "surface.npz") as s, np.load(folder / "queries.npz") as q:
                    loaded[folder] = (s["points"].astype(np.float32), s["normals"].astype(np.float32),
                                      q["points"].astype(np.float32), q["sdf"].astype(np.float32))
            for arrays, value in zip((self.surface, self.normals, self.queries, self.sdf), loaded[folder]):
                arrays.append(value)

    def __len__(self) -> int:
        return len(self.assets)

    def sample(self, index: int, seed: int, points: int, queries: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng(seed)
        s = rng.choice(len(self.surface[index]), points, replace=len(self.surface[index]) < points)
        q = rng.choice(len(self.queries[index]), queries, replace=len(self.queries[index]) < queries)
        return self.surface[index][s], self.normals[index][s], self.queries[index][q], self.sdf[index][q]


def occupancy_labels(sdf: np.ndarray, band: float) -> np.ndarray:
    """Training targets: semi-continuous (Direct3D) for band > 0, binary inside/outside for band = 0."""
    return semi_continuous_occupancy(sdf, band) if band > 0 else (sdf < 0).astype(np.float32)


class VAETask:
    """The D3D-VAE on the shared loop."""

    model_type = MODEL_TYPE

    def __init__(self, cfg: VAERunConfig, data: str | Path, val_data: str | Path | None = None):
        self.cfg, self.model_cfg = cfg, cfg.model_config()
        include = tuple(cfg.data.include)
        self.train_set = ShapeSet(prepared_assets(data, "train", include, dict(cfg.data.repeat)))
        val_assets = prepared_assets(val_data, None, include) if val_data else prepared_assets(data, "val", include)
        self.val_set = ShapeSet(val_assets[: cfg.data.val_assets])
        self.bank = GeneratedBank(cfg.data.generated) if cfg.data.generated else None
        if self.bank is not None and self.bank.latents.shape[2:] != self.model_cfg.latent_shape:
            raise InputError("bad_config", f"{cfg.data.generated}: latents of shape {self.bank.latents.shape[2:]}, "
                             f"this VAE's are {self.model_cfg.latent_shape} (a bank of another model)")

    def build_model(self) -> nn.Module:
        return D3DVAE(self.model_cfg)

    def model_config(self) -> dict:
        return asdict(self.model_cfg)

    def train_size(self) -> int:
        return len(self.train_set)

    def make_batch(self, indices, seeds, device) -> dict:
        d = self.cfg.data
        parts = [self.train_set.sample(i, s, d.surface_points, d.queries) for i, s in zip(indices, seeds)]
        points, normals, queries, sdf = (np.stack(x) for x in zip(*parts))
        labels = occupancy_labels(sdf, d.label_band)
        tensors = dict(points=points, normals=normals, queries=queries, labels=labels)
        batch = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(device) for k, v in tensors.items()}
        batch["seeds"] = seeds
        if self.bank is not None:
            batch.update(self._generated(indices, seeds, batch["queries"]))
        return batch

    def _generated(self, indices, seeds, queries: torch.Tensor) -> dict:
        """Which items decode a bank latent (a random view's) instead of the encoder's: those latents
        (B, d_z, r, 3r; zeros elsewhere), and every item's queries turned by its latent's turn (docs)."""
        use = torch.zeros(len(indices), dtype=torch.bool)
        latents = torch.zeros((len(indices), *self.model_cfg.latent_shape))
        turned = queries.clone()  # (B, M, 3)
        for k, (i, seed) in enumerate(zip(indices, seeds)):
            rng = np.random.default_rng([seed % 2**62, 7])
            name = self.train_set.assets[i].name
            if name in self.bank.index and rng.random() < self.cfg.data.generated_fraction:
                latents[k], degrees = self.bank.get(name, int(rng.integers(self.bank.views)))
                turned[k] = turn_points(queries[k], degrees)
                use[k] = True
        device = queries.device
        return {"generated": latents.to(device), "use_generated": use.to(device), "queries": turned}

    def loss(self, model, batch) -> tuple[torch.Tensor, dict]:
        noise = _per_sample_noise(self.model_cfg.latent_shape, batch["seeds"], batch["points"].device)
        if "generated" in batch:  # the bank's latent where chosen (the truth's queries turned like it)
            posterior = model.encode(batch["points"], batch["normals"])
            use = batch["use_generated"].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
            z = torch.where(use, batch["generated"], posterior.sample(noise))  # (B, d_z, r, 3r)
            logits, kl = model.query(model.decode(z), batch["queries"]), posterior.kl()  # (B, M), (B,)
        else:
            logits, kl = model(batch["points"], batch["normals"], batch["queries"], noise=noise)  # (B, M), (B,)
        bce = F.binary_cross_entropy_with_logits(logits.float(), batch["labels"])
        kl = kl.mean()
        return bce + self.cfg.data.kl_weight * kl, {"bce": bce.detach(), "kl": kl.detach()}

    def validate(self, model, device) -> dict:
        """Mean BCE (binary labels) and occupancy IoU of the posterior mode on val query points."""
        d = self.cfg.data
        ious, bces = [], []
        for i in range(len(self.val_set)):
            points, normals, queries, sdf = self.val_set.sample(i, i, d.surface_points, d.val_queries)
            t = [torch.from_numpy(a)[None].to(device) for a in (points, normals, queries)]
            logits = model.query(model.decode(model.encode(t[0], t[1]).mode()), t[2])[0].float().cpu()
            inside = torch.from_numpy(sdf < 0)
            pred = logits > 0
            ious.append(float((pred & inside).sum()) / max(1, int((pred | inside).sum())))
            bces.append(float(F.binary_cross_entropy_with_logits(logits, inside.float())))
        return {"iou": float(np.mean(ious)), "bce": float(np.mean(bces))}


def _per_sample_noise(shape: tuple, seeds: list[int], device) -> torch.Tensor:
    """(B, *shape) latent noise drawn per sample from its stream seed, so DDP ranks and single runs agree."""
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(s % 2**62)) for s in seeds]
    return torch.stack(noise).to(device)
