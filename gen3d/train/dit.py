"""Training task of the image-conditioned shape DiT: prepared assets -> cached VAE latents (normalized
by a stored scale/shift, as Direct3D rescales latents) + condition images from the prepared views;
v-prediction (or eps/x0) on a discrete VP schedule, both conditions dropped together with cfg_drop."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from gen3d.diffusion.schedules import DiscreteVP
from gen3d.stages.shape_dit.encoders import TinyEncoderConfig, TinyImageEncoder
from gen3d.stages.shape_dit.model import MODEL_TYPE, D3DDiT, DiTConfig, ImageConditionedDiT, preset_config
from gen3d.stages.shape_dit.preprocess import prepare_image
from gen3d.stages.shape_vae.model import load_vae
from gen3d.train.loop import TrainConfig
from gen3d.train.vae import prepared_assets


@dataclass
class DiTDataConfig:
    vae: str = ""  # VAE model folder ("" = the bundled tiny VAE)
    views: int = 4  # prepared views used as condition images (a random one per sample and step)
    cfg_drop: float = 0.1  # probability of dropping both conditions (classifier-free guidance)
    schedule: str = "linear"  # discrete VP betas, 1000 steps (Direct3D: linear 1e-4 .. 2e-2)
    include: tuple = ()
    val_assets: int = 32


@dataclass
class DiTRunConfig:
    preset: str = "tiny"
    model: dict = field(default_factory=dict)
    encoder: TinyEncoderConfig = field(default_factory=TinyEncoderConfig)
    data: DiTDataConfig = field(default_factory=DiTDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def model_config(self) -> DiTConfig:
        return preset_config(self.preset, **self.model)


def cache_latents(assets: list[Path], vae_folder: str, out: Path) -> Path:
    """Encode every asset's prepared surface samples once (posterior mode) into one safetensors file;
    assets the file lacks (a dataset grown since) are encoded and added."""
    latents = load_file(str(out)) if out.is_file() else {}
    missing = [folder for folder in assets if folder.name not in latents]
    if not missing:
        return out
    vae = load_vae(vae_folder or None)
    for folder in missing:
        latents[folder.name] = encode_asset(vae, folder)
    temp = out.with_suffix(".tmp")
    save_file(latents, str(temp))
    temp.replace(out)
    return out


def encode_asset(vae, folder: Path) -> torch.Tensor:
    """(d_z, r, 3r) posterior mode of a prepared asset's surface samples (a fixed subset, seed 0)."""
    count = vae.config.surface_points
    with np.load(folder / "surface.npz") as s, torch.no_grad():
        pick = np.random.default_rng(0).choice(len(s["points"]), count, replace=False)
        p, n = (torch.from_numpy(s[k][pick].astype(np.float32))[None] for k in ("points", "normals"))  # (1, N, 3)
        return vae.encode(p, n).mode()[0].contiguous()  # (d_z, r, 3r)


def view_rgba(folder: Path, view: int) -> Image.Image:
    """A prepared view as a user's image: its RGB render with the coverage mask as alpha."""
    rgb = Image.open(folder / "views" / f"{view:03d}_rgb.png").convert("RGB")
    return Image.merge("RGBA", (*rgb.split(), Image.open(folder / "views" / f"{view:03d}_mask.png").convert("L")))


def condition_image(folder: Path, view: int, size: int) -> np.ndarray:
    """(S, S, 3) uint8: a prepared view through the same preprocessing as a user's image."""
    rgb = Image.open(folder / "views" / f"{view:03d}_rgb.png").convert("RGB")
    mask = np.asarray(Image.open(folder / "views" / f"{view:03d}_mask.png").convert("L"), np.float32) / 255.0
    if mask.max() < 0.5:  # nothing in view: the model sees an empty (black) image
        return np.zeros((size, size, 3), np.uint8)
    return (prepare_image(rgb, size, name=str(folder), mask=mask).image * 255).round().astype(np.uint8)


class DiTTask:
    """The image-conditioned D3D-DiT on the shared loop."""

    model_type = MODEL_TYPE

    def __init__(self, cfg: DiTRunConfig, data: str | Path | list, latent_file: Path,
                 val_data: str | Path | None = None, latent_norm: tuple[float, float] | None = None):
        """`latent_norm`: (shift, scale) to keep (a fine-tuned model's); default: from the training latents."""
        self.cfg, self.model_cfg = cfg, cfg.model_config()
        include = tuple(cfg.data.include)
        train = prepared_assets(data, "train", include)
        val = (prepared_assets(val_data, None, include) if val_data else prepared_assets(data, "val", include))
        val = val[: cfg.data.val_assets]
        latents = load_file(str(cache_latents(train + val, cfg.data.vae, latent_file)))
        stacked = torch.stack([latents[a.name] for a in train])  # (N, d_z, r, 3r)
        self.shift, self.scale = latent_norm or (float(stacked.mean()), float(1.0 / stacked.std()))
        self.train_latents = (stacked - self.shift) * self.scale
        self.val_latents = (torch.stack([latents[a.name] for a in val]) - self.shift) * self.scale
        size = cfg.encoder.image_size
        self.train_images = np.stack([[condition_image(a, v, size) for v in range(cfg.data.views)] for a in train])
        self.val_images = np.stack([condition_image(a, 0, size) for a in val])  # (M, S, S, 3)
        self.schedule = DiscreteVP.make(cfg.data.schedule)

    def build_model(self) -> nn.Module:
        return ImageConditionedDiT(TinyImageEncoder(self.cfg.encoder), D3DDiT(self.model_cfg))

    def model_config(self) -> dict:
        return {"dit": asdict(self.model_cfg), "encoder": asdict(self.cfg.encoder), "schedule": self.cfg.data.schedule,
                "latent_shift": self.shift, "latent_scale": self.scale}

    def train_size(self) -> int:
        return len(self.train_latents)

    def make_batch(self, indices, seeds, device) -> dict:
        rngs = [np.random.default_rng(s) for s in seeds]
        views = [int(r.integers(self.cfg.data.views)) for r in rngs]
        t = [int(r.integers(self.schedule.num_steps)) for r in rngs]
        keep = [bool(r.random() >= self.cfg.data.cfg_drop) for r in rngs]
        noise = [torch.from_numpy(r.standard_normal(self.train_latents.shape[1:]).astype(np.float32)) for r in rngs]
        images = np.stack([self.train_images[i, v] for i, v in zip(indices, views)])
        return {"x0": self.train_latents[indices].to(device), "noise": torch.stack(noise).to(device),
                "t": torch.tensor(t, device=device), "keep": torch.tensor(keep, device=device),
                "images": torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)}

    def _loss(self, model, x0, noise, t, images, keep) -> torch.Tensor:
        abar = self.schedule.alphas_cumprod.to(x0.device)[t].float().view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        target = {"eps": noise, "x0": x0, "v": abar.sqrt() * noise - (1 - abar).sqrt() * x0}[self.model_cfg.prediction]
        return F.mse_loss(model(x_t, t.float(), images, keep).float(), target)

    def loss(self, model, batch) -> tuple[torch.Tensor, dict]:
        loss = self._loss(model, batch["x0"], batch["noise"], batch["t"], batch["images"], batch["keep"])
        return loss, {}

    def validate(self, model, device) -> dict:
        """Mean loss on val assets at 8 fixed timesteps with fixed noise (conditions kept)."""
        rng = np.random.default_rng(0)
        losses = []
        for i in range(len(self.val_latents)):
            t = torch.linspace(50, 950, 8).long().to(device)
            x0 = self.val_latents[i: i + 1].expand(8, -1, -1, -1).to(device)
            noise = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32)).to(device)
            images = torch.from_numpy(self.val_images[i: i + 1]).permute(0, 3, 1, 2).float().div(255)
            losses.append(float(self._loss(model, x0, noise, t, images.expand(8, -1, -1, -1).to(device), None)))
        return {"loss": float(np.mean(losses))}
