"""Image -> 3D (Direct3D): preprocess the image, sample a triplane latent with the image-conditioned
DiT, decode it with the VAE, extract, clean up and fit the face budget. Untextured for now."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import gen3d
from gen3d.diffusion.sampling import SAMPLERS
from gen3d.errors import InputError
from gen3d.geometry.cleanup import cleanup, simplify
from gen3d.geometry.transform import apply_transform, normalize
from gen3d.stages.shape_dit.orient import ConditionViews, front_turn, turn_matrix
from gen3d.stages.shape_dit.preprocess import Prepared, prepare_image
from gen3d.stages.shape_dit.proportion import fitted_width_scale
from gen3d.stages.shape_dit.sample import LatentSampler
from gen3d.stages.shape_dit.silhouette import SilhouetteCarver
from gen3d.stages.shape_vae.mesh import DecodedLatents
from gen3d.stages.shape_vae.model import load_vae
from gen3d.types import Mesh

BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "tiny"


@dataclass
class GenerationSettings:
    """Defaults come from the model folder's pipeline.json; every field can be overridden per call."""

    sampler: str = "dpmpp_2m"
    steps: int = 20
    guidance: float = 1.5  # classifier-free guidance scale (1.0: none); the bundled model sets 1.0 (docs)
    resolution: int = 128  # extraction grid
    faces: int = 20_000  # face budget of the output
    samples: int = 1  # latents per image (seeds seed..seed+samples-1); > 1: extract their mean occupancy (docs)
    orient: str = "front"  # "front": turn each sample so that the input shows its +Z side (docs); "none"
    width: str = "model"  # "fit": scale x so the front silhouette's width/height is the input's (docs); "model"
    carve: str = "none"  # "silhouette": remove what the front camera would see outside the input's foreground (docs)


ORIENTATIONS = ("front", "none")
WIDTHS = ("fit", "model")
CARVINGS = ("silhouette", "none")


def check_settings(s: GenerationSettings) -> GenerationSettings:
    """`s` itself, or ValueError naming the first setting out of its range."""
    for name, least in (("samples", 1), ("steps", 1), ("faces", 4), ("resolution", 8)):
        if getattr(s, name) < least:
            raise ValueError(f"{name} must be >= {least}, got {getattr(s, name)}")
    if s.sampler not in SAMPLERS or s.sampler == "dpm_solver_v3":  # v3 needs the model's statistics
        usable = sorted(set(SAMPLERS) - {"dpm_solver_v3"})
        raise ValueError(f"sampler must be one of {', '.join(usable)}, got {s.sampler!r}")
    for name, choices in (("orient", ORIENTATIONS), ("width", WIDTHS), ("carve", CARVINGS)):
        if getattr(s, name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(s, name)!r}")
    return s


class ImageTo3D:
    """`ImageTo3D.from_pretrained(folder).run(image, seed=0) -> Mesh` (canonical frame, longest side 1.9)."""

    def __init__(self, vae, latents: LatentSampler, settings: GenerationSettings, model_id: str,
                 views: ConditionViews | None = None):
        self.vae, self.latents, self.settings, self.model_id = vae, latents, settings, model_id
        self.views = views or ConditionViews()  # the camera ring of the training condition images

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, device: str = "cpu") -> ImageTo3D:
        folder = Path(folder) if folder is not None else BUNDLED
        spec_path = folder / "pipeline.json"
        if not spec_path.is_file():
            raise InputError("bad_checkpoint", f"{folder}: not an image -> 3D model folder (pipeline.json is missing)")
        try:
            spec = json.loads(spec_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError("bad_checkpoint", f"{spec_path}: not valid JSON ({error})") from None
        try:
            settings = check_settings(GenerationSettings(**spec.get("defaults", {})))
        except (TypeError, ValueError) as error:
            raise InputError("bad_checkpoint", f"{spec_path}: defaults: {error}") from None
        views = spec.get("condition_views", {})
        try:
            views = ConditionViews(**{**views, "azimuths": tuple(views.get("azimuths", ConditionViews.azimuths))})
        except TypeError as error:
            raise InputError("bad_checkpoint", f"{spec_path}: condition_views: {error}") from None
        return cls(load_vae(folder / spec.get("vae", "vae"), device),
                   LatentSampler.from_pretrained(folder / spec.get("dit", "dit"), device), settings,
                   spec.get("model_id", folder.name), views)

    def run(self, image: Image.Image, *, seed: int = 0, name: str = "image", **overrides) -> Mesh:
        return self.run_batch([image], seed=seed, names=[name], **overrides)[0]

    def run_batch(self, images: list[Image.Image], *, seed: int = 0, names: list[str] | None = None,
                  **overrides) -> list[Mesh]:
        """Every image with the same seed: a batch gives the meshes of single calls."""
        s = self.resolve(**overrides)
        check_settings(s)
        names = names or [f"image {i}" for i in range(len(images))]
        outline_size = self.views.resolution if s.carve == "silhouette" else None  # the carver's size
        prepared = [prepare_image(img, self.latents.image_size, name=n, outline_size=outline_size)
                    for img, n in zip(images, names)]
        pixels = torch.stack([torch.from_numpy(p.image).permute(2, 0, 1) for p in prepared])  # (B, 3, S, S)
        pixels = pixels.repeat_interleave(s.samples, 0)  # (B * samples, 3, S, S)
        seeds = [seed + k for k in range(s.samples)] * len(images)
        latents = self.latents(pixels, seeds, sampler=s.sampler, steps=s.steps, guidance=s.guidance)
        latents = latents.unflatten(0, (len(images), s.samples))  # (B, samples, d_z, r, 3r)
        return [self.to_mesh(z, s, n, p) for z, n, p in zip(latents, names, prepared)]

    def to_mesh(self, z: torch.Tensor, s: GenerationSettings, name: str, prepared: Prepared | None = None) -> Mesh:
        """(samples, d_z, r, 3r) latents of one image -> its cleaned, budgeted, normalized mesh (each sample
        turned to face the input first when `s.orient` is "front", the result's width fitted to the
        input's silhouette when `s.width` is "fit", both given the `prepared` input, and the field carved
        to the input's outline (`prepared.outline`: (R, R) foreground cropped at the ring's size) when
        `s.carve` is "silhouette": extracted and placed once, carved where that output's front view leaves
        the picture's foreground, extracted and placed again)."""
        decoded = DecodedLatents(self.vae, z)
        rotations = self.front_rotations(decoded, prepared.mask) if s.orient == "front" and prepared else None
        mesh, transform = self.place(self.surface(decoded, s, name, rotations), s, prepared)
        if s.carve == "silhouette" and prepared and prepared.outline is not None:
            keep = SilhouetteCarver(prepared.outline, mesh, transform, self.views).keep
            mesh, _ = self.place(self.surface(decoded, s, name, rotations, keep), s, prepared)
        return mesh

    def surface(self, decoded: DecodedLatents, s: GenerationSettings, name: str, rotations=None, keep=None) -> Mesh:
        """The extracted, cleaned, budgeted surface in the latents' frame (`keep`: see DecodedLatents.to_mesh)."""
        mesh, _ = decoded.to_mesh(s.resolution, rotations=rotations, keep=keep)
        if mesh is None:
            raise InputError("empty_result", f"{name}: the model produced no surface")
        mesh, _ = cleanup(mesh, min_component_area=0.01)
        return simplify(mesh, s.faces) if mesh.num_faces > s.faces else mesh

    def place(self, mesh: Mesh, s: GenerationSettings, prepared: Prepared | None) -> tuple[Mesh, np.ndarray]:
        """The surface normalized (and its width fitted, when asked): (output mesh, 4x4 transform applied)."""
        mesh, transform = normalize(mesh)
        if s.width == "fit" and prepared:
            stretch = np.diag([fitted_width_scale(mesh, prepared.aspect, self.views), 1.0, 1.0, 1.0])
            mesh, renormalize = normalize(apply_transform(mesh, stretch))
            transform = renormalize @ stretch @ transform
        return mesh, transform

    def front_rotations(self, decoded: DecodedLatents, mask: np.ndarray) -> np.ndarray:
        """(samples, 3, 3): per sample, the turn about +Y that makes the input its front view (chosen on
        each sample's coarse surface, which the extraction computes anyway)."""
        turns = [0.0 if m is None else front_turn(m, mask, self.views) for m in decoded.sample_meshes()]
        return np.stack([turn_matrix(t) for t in turns])

    def metadata(self, seed: int, **overrides) -> dict:
        """What GLB asset.extras and --json carry (CONVENTIONS)."""
        s = self.resolve(**overrides)
        return {"generator": f"gen3d {gen3d.__version__}", "model_id": self.model_id, "seed": seed,
                "sampler": s.sampler, "steps": s.steps, "guidance": s.guidance, "samples": s.samples,
                "orient": s.orient, "width": s.width, "carve": s.carve}

    def resolve(self, **overrides) -> GenerationSettings:
        """The model's defaults with the given (non-None) overrides."""
        return GenerationSettings(**{**self.settings.__dict__, **{k: v for k, v in overrides.items() if v is not None}})


def write_pipeline_spec(folder: str | Path, model_id: str, defaults: dict | None = None,
                        views: ConditionViews | None = None) -> Path:
    """pipeline.json of a model folder holding vae/ and dit/, with the DiT's latent scale/shift copied
    for reference (the sampler reads them from dit/config.json) and the camera ring of its training
    condition images (`views`, default: the data preparation's)."""
    path = Path(folder) / "pipeline.json"
    dit = json.loads((Path(folder) / "dit" / "config.json").read_text())["config"]
    spec = {"format_version": 1, "model_id": model_id, "vae": "vae", "dit": "dit",
            "latent_scale": dit["latent_scale"], "latent_shift": dit["latent_shift"],
            "defaults": {**GenerationSettings().__dict__, **(defaults or {})},
            "condition_views": asdict(views or ConditionViews())}
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return path

