"""`gen3d train dit` end to end on a micro model: latent cache, condition images from prepared views,
export with the latent scale/shift; the v-prediction target against its definition."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from tests.train.test_loop import _gen3d

MICRO_DIT = {
    "preset": "tiny",
    "model": {"latent_channels": 4, "plane_res": 4, "width": 32, "heads": 2, "depth": 1, "pixel_dim": 32,
              "semantic_dim": 32},
    "encoder": {"image_size": 64, "patch": 16, "width": 32, "heads": 2, "pixel_layers": 1, "semantic_layers": 1},
    "data": {"views": 2, "val_assets": 2},
    "train": {"steps": 3, "batch_size": 4, "warmup_steps": 1, "log_every": 1, "val_every": 3, "checkpoint_every": 3},
}


@pytest.fixture
def micro_vae(tmp_path):
    from gen3d.stages.shape_vae.model import D3DVAE, preset_config
    from gen3d.utils.checkpoint import save_pretrained
    from tests.train.conftest import MICRO

    torch.manual_seed(0)
    vae = D3DVAE(preset_config("tiny", **MICRO["model"]))
    return save_pretrained(tmp_path / "vae", vae.state_dict(), "D3DVAE", vae.config_dict())


def test_train_dit_micro_run_and_export(tmp_path, prepared_small, micro_vae):
    config = tmp_path / "dit.yaml"
    config.write_text(yaml.safe_dump(MICRO_DIT))
    run = tmp_path / "run"
    result = _gen3d("train", "dit", "--config", str(config), "--data", str(prepared_small), "--vae", str(micro_vae),
                    "--out", str(run), "-q")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in rows if "loss" in r]
    assert [r["step"] for r in losses] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in losses)
    assert any("val/loss" in r for r in rows)
    meta = json.loads((run / "model" / "config.json").read_text())
    assert meta["model_type"] == "D3DDiT" and meta["config"]["latent_scale"] > 0
    assert meta["config"]["encoder"]["image_size"] == 64 and (run / "latents.safetensors").is_file()


def test_loss_targets_v_eps_and_x0_as_defined():
    """The task's loss is zero for a network that returns the defined target from (x_t, t) and equals
    the target's mean square for one that returns zeros: v = sqrt(abar) eps - sqrt(1 - abar) x0."""
    from gen3d.diffusion.schedules import DiscreteVP
    from gen3d.stages.shape_dit.model import preset_config
    from gen3d.train.dit import DiTTask

    torch.manual_seed(0)
    x0, noise, t = torch.randn(3, 4, 4, 12), torch.randn(3, 4, 4, 12), torch.tensor([0, 400, 999])
    abar = DiscreteVP.make("linear").alphas_cumprod[t].float().view(-1, 1, 1, 1)
    targets = {"v": abar.sqrt() * noise - (1 - abar).sqrt() * x0, "eps": noise, "x0": x0}
    for prediction, target in targets.items():
        task = DiTTask.__new__(DiTTask)
        task.schedule, task.model_cfg = DiscreteVP.make("linear"), preset_config("tiny", prediction=prediction)

        def oracle(x_t, tt, images, keep, target=target):
            assert torch.allclose(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * noise, atol=1e-6)
            assert torch.equal(tt, t.float())
            return target

        assert float(task._loss(oracle, x0, noise, t, None, None)) < 1e-12
        zeros = task._loss(lambda *args: torch.zeros_like(x0), x0, noise, t, None, None)
        assert torch.isclose(zeros, target.square().mean(), rtol=1e-6)
