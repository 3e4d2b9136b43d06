"""Training task of the image-conditioned shape DiT: prepared assets -> cached VAE latents (normalized
by a stored scale/shift, as Direct3D rescales latents) + condition images from the prepared views;
v-prediction (or eps/x0) on a discrete VP schedule, both conditions dropped together with cfg_drop."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from gen3d.diffusion.schedules import DiscreteVP
from gen3d.errors import InputError
from gen3d.stages.shape_dit.encoders import TinyEncoderConfig, TinyImageEncoder
from gen3d.stages.shape_dit.model import MODEL_TYPE, D3DDiT, DiTConfig, ImageConditionedDiT, preset_config
from gen3d.stages.shape_dit.preprocess import prepare_image
from gen3d.stages.shape_vae.model import load_vae
from gen3d.train.loop import TrainConfig
from gen3d.utils.files import open_tagged_npz


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


PACK_FORMAT = "gen3d-dit-pack-1"


def write_pack(cfg: DiTRunConfig, data: str | Path | list, latent_file: Path, out: str | Path,
               val_data: str | Path | None = None, fp16_latents: bool = False) -> Path:
    """One .npz holding everything `gen3d train dit` reads from prepared folders: the VAE latents
    (float32 as cached, or rounded to float16 to halve the pack) and the condition images (lossless WebP,
    about 2 KB each at 128 px), so that a run can train where the prepared folders are not (a GPU machine).
    No pickles: names are unicode arrays."""
    inputs = prepared_inputs(cfg, data, latent_file, val_data)
    size = cfg.encoder.image_size
    arrays = {"format": np.array(PACK_FORMAT), "image_size": np.array(size), "views": np.array(cfg.data.views)}
    for split in ("train", "val"):
        arrays[f"{split}_names"] = np.array(inputs[f"{split}_names"])
        latents = inputs[f"{split}_latents"].numpy()  # (N, d_z, r, 3r)
        arrays[f"{split}_latents"] = latents.astype(np.float16) if fp16_latents else latents
        encoded = [_webp(image) for image in inputs[f"{split}_images"].reshape(-1, size, size, 3)]
        arrays[f"{split}_webp"] = np.frombuffer(b"".join(encoded), np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(e) for e in encoded])  # (N * views + 1,)
    out = Path(out)
    temp = out.with_name(out.name + ".tmp.npz")
    np.savez(temp, **arrays)
    temp.replace(out)
    return out


def read_pack(pack: str | Path, cfg: DiTRunConfig) -> dict:
    """Latents (torch float32, whatever the pack stores) and condition images ((N, V, S, S, 3) / (M, S, S, 3)
    uint8) of a pack; InputError when it is not a pack or was written for another image size or fewer views."""
    with open_tagged_npz(pack, PACK_FORMAT, "gen3d DiT training pack") as stored:
        size, views = int(stored["image_size"]), int(stored["views"])
        if size != cfg.encoder.image_size or views < cfg.data.views:
            raise InputError("bad_config", f"{pack}: written for image_size {size} and {views} views; the config "
                             f"asks for image_size {cfg.encoder.image_size} and {cfg.data.views} views")
        parts = {}
        for split, per_asset in (("train", views), ("val", 1)):
            data, offsets = stored[f"{split}_webp"], stored[f"{split}_offsets"]
            images = np.stack([_unwebp(data[offsets[i]: offsets[i + 1]]) for i in range(len(offsets) - 1)])
            images = images.reshape(-1, per_asset, size, size, 3)  # (N, V, S, S, 3)
            parts[f"{split}_images"] = images[:, : cfg.data.views] if split == "train" else images[:, 0]
            parts[f"{split}_latents"] = torch.from_numpy(stored[f"{split}_latents"].astype(np.float32))
    keep = cfg.data.val_assets
    parts["val_images"], parts["val_latents"] = parts["val_images"][:keep], parts["val_latents"][:keep]
    return parts


def _webp(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", lossless=True, quality=100, method=4)
    return buffer.getvalue()


def _unwebp(data: np.ndarray) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data.tobytes())).convert("RGB"))


def prepared_inputs(cfg: DiTRunConfig, data: str | Path | list, latent_file: Path,
                    val_data: str | Path | None = None) -> dict:
    """What the DiT trains on, from `gen3d data prepare` folders: VAE latents as cached in `latent_file`
    (not normalized), condition images (train: every view, (N, V, S, S, 3); val: view 0, (M, S, S, 3);
    uint8) and the asset names; the keys of `read_pack` plus `*_names`."""
    from gen3d.train.vae import prepared_assets  # here: it imports libigl, which a run from a pack does not need

    include = tuple(cfg.data.include)
    train = prepared_assets(data, "train", include)
    val = prepared_assets(val_data, None, include) if val_data else prepared_assets(data, "val", include)
    val = val[: cfg.data.val_assets]
    latents = load_file(str(cache_latents(train + val, cfg.data.vae, latent_file)))
    size = cfg.encoder.image_size
    return {"train_names": [a.name for a in train], "val_names": [a.name for a in val],
            "train_latents": torch.stack([latents[a.name] for a in train]),
            "val_latents": torch.stack([latents[a.name] for a in val]),
            "train_images": np.stack([[condition_image(a, v, size) for v in range(cfg.data.views)] for a in train]),
            "val_images": np.stack([condition_image(a, 0, size) for a in val])}


class DiTTask:
    """The image-conditioned D3D-DiT on the shared loop."""

    model_type = MODEL_TYPE

    def __init__(self, cfg: DiTRunConfig, train_latents: torch.Tensor, val_latents: torch.Tensor,
                 train_images: np.ndarray, val_images: np.ndarray, latent_norm: tuple[float, float] | None = None):
        """Latents as the VAE gives them (normalized here); `latent_norm`: (shift, scale) to keep (a
        fine-tuned model's); default: from the training latents."""
        self.cfg, self.model_cfg = cfg, cfg.model_config()
        self.shift, self.scale = latent_norm or (float(train_latents.mean()), float(1.0 / train_latents.std()))
        self.train_latents = (train_latents - self.shift) * self.scale  # (N, d_z, r, 3r)
        self.val_latents = (val_latents - self.shift) * self.scale  # (M, d_z, r, 3r)
        self.train_images, self.val_images = train_images, val_images  # (N, V, S, S, 3), (M, S, S, 3) uint8
        self.schedule = DiscreteVP.make(cfg.data.schedule)

    @classmethod
    def from_prepared(cls, cfg: DiTRunConfig, data: str | Path | list, latent_file: Path,
                      val_data: str | Path | None = None, latent_norm: tuple[float, float] | None = None) -> DiTTask:
        """From `gen3d data prepare` folders: latents cached in `latent_file`, condition images from the views."""
        parts = prepared_inputs(cfg, data, latent_file, val_data)
        return cls(cfg, parts["train_latents"], parts["val_latents"], parts["train_images"], parts["val_images"],
                   latent_norm)

    @classmethod
    def from_pack(cls, cfg: DiTRunConfig, pack: str | Path, latent_norm: tuple[float, float] | None = None) -> DiTTask:
        """From a training pack written by `write_pack` (see there)."""
        parts = read_pack(pack, cfg)
        return cls(cfg, parts["train_latents"], parts["val_latents"], parts["train_images"], parts["val_images"],
                   latent_norm)

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
                "images": torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(255)}  # uint8 moved

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
