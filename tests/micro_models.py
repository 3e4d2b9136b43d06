"""A micro random image -> 3D model folder (vae/, dit/, pipeline.json) for tests."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from gen3d.pipelines.image_to_3d import write_pipeline_spec
from gen3d.stages.shape_dit.encoders import TinyEncoderConfig, TinyImageEncoder
from gen3d.stages.shape_dit.model import D3DDiT, ImageConditionedDiT
from gen3d.stages.shape_dit.model import preset_config as dit_preset
from gen3d.stages.shape_vae.model import D3DVAE
from gen3d.stages.shape_vae.model import preset_config as vae_preset
from gen3d.utils.checkpoint import save_pretrained


def write_micro_model(folder: Path, vae: dict, defaults: dict) -> Path:
    """Seeded random weights: a tiny-preset VAE with the `vae` overrides (4 latent channels on 4 x 4
    planes), a one-block DiT with a 64 px image encoder, and pipeline.json with `defaults`."""
    torch.manual_seed(0)
    model = D3DVAE(vae_preset("tiny", **vae))
    save_pretrained(folder / "vae", model.state_dict(), "D3DVAE", model.config_dict())
    encoder_cfg = TinyEncoderConfig(image_size=64, width=32, heads=2, pixel_layers=1, semantic_layers=1)
    dit_cfg = dit_preset("tiny", latent_channels=4, plane_res=4, width=32, heads=2, depth=1, pixel_dim=32,
                         semantic_dim=32)
    net = ImageConditionedDiT(TinyImageEncoder(encoder_cfg), D3DDiT(dit_cfg))
    torch.nn.init.normal_(net.dit.out.weight, std=0.05)
    config = {"dit": asdict(dit_cfg), "encoder": asdict(encoder_cfg), "schedule": "linear",
              "latent_shift": 0.1, "latent_scale": 2.0}
    save_pretrained(folder / "dit", net.state_dict(), "D3DDiT", config)
    write_pipeline_spec(folder, "micro-test", defaults)
    return folder
