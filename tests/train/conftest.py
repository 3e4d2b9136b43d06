"""A small prepared dataset (procedural shapes through `gen3d data prepare`) and a micro VAE config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def prepared_small(tmp_path_factory) -> Path:
    from gen3d.geometry.procedural import FAMILIES, write_procedural
    from gen3d.stages.curate.config import OutputConfig, PrepareConfig
    from gen3d.stages.curate.job import prepare

    root = tmp_path_factory.mktemp("prepared")
    write_procedural(root / "src", list(FAMILIES), 10, seed=0, split="train")
    output = OutputConfig(surface_points=2048, uniform_queries=2000, near_queries=4000, render_views=2, render_res=64)
    cfg = PrepareConfig(output=output, pose="none")
    cfg.filters.duplicate_distance = 0.0  # keep every shape
    prepare(root / "src", root / "out", cfg, workers=1)
    return root / "out"


MICRO = {
    "preset": "tiny",
    "model": {"width": 32, "heads": 2, "encoder_layers": 1, "plane_res": 4, "latent_channels": 4,
              "decoder_channels": [16, 8], "triplane_channels": 8, "num_freqs": 4, "surface_points": 256},
    "data": {"surface_points": 256, "queries": 1024, "val_assets": 2, "val_queries": 512},
    "train": {"steps": 12, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "log_every": 1, "val_every": 6,
              "checkpoint_every": 2, "ema_decay": 0.9},
}


@pytest.fixture
def micro_config(tmp_path) -> Path:
    """Write the micro config (optionally changed by the test) and return its path."""

    def write(**train) -> Path:
        data = {**MICRO, "train": {**MICRO["train"], **train}}
        path = tmp_path / "micro.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write
