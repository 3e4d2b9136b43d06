"""`gen3d train dit` end to end on a micro model: latent cache, condition images from prepared views,
export with the latent scale/shift; the v-prediction target against its definition."""

from __future__ import annotations

import json
import math
from pathlib import Path

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


def _split_copy(prepared: Path, out: Path, keep) -> Path:
    """A copy of a prepared folder whose manifest keeps only the ok rows `keep` picks (by position)."""
    import shutil

    shutil.copytree(prepared, out)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    ok = [r for r in rows if r["status"] == "ok"]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(ok) if keep(i)))
    return out


def test_several_data_folders_give_the_union_of_their_assets(tmp_path, prepared_small):
    from gen3d.errors import InputError
    from gen3d.train.vae import prepared_assets

    first = _split_copy(prepared_small, tmp_path / "a", lambda i: i % 2 == 0)
    second = _split_copy(prepared_small, tmp_path / "b", lambda i: i % 2 == 1)
    whole = {a.name for a in prepared_assets(prepared_small, "train")}
    parts = prepared_assets([first, second], "train")
    assert len(parts) == len(whole) and {a.name for a in parts} == whole
    assert {a.parent for a in parts} == {first, second}
    with pytest.raises(InputError, match="no manifest.jsonl"):
        prepared_assets([first, tmp_path], "train")


def test_latent_cache_adds_the_assets_it_lacks(tmp_path, prepared_small, micro_vae):
    from safetensors.torch import load_file

    from gen3d.train.dit import cache_latents
    from gen3d.train.vae import prepared_assets

    assets = prepared_assets(prepared_small, None)
    grown = load_file(str(cache_latents(assets, str(micro_vae), tmp_path / "grown.safetensors")))
    cache_latents(assets[:3], str(micro_vae), tmp_path / "part.safetensors")
    assert set(load_file(str(tmp_path / "part.safetensors"))) == {a.name for a in assets[:3]}
    part = load_file(str(cache_latents(assets, str(micro_vae), tmp_path / "part.safetensors")))
    assert set(part) == set(grown) and all(torch.equal(part[k], grown[k]) for k in grown)


def test_init_from_starts_a_new_run_from_a_model_and_keeps_its_latent_norm(tmp_path, prepared_small, micro_vae):
    """With lr 0 a fine-tuning run must export exactly the weights it started from (and the latent
    shift/scale of that model, not of its own data); a model of another config is refused."""
    from safetensors.torch import load_file

    config = tmp_path / "dit.yaml"
    config.write_text(yaml.safe_dump(MICRO_DIT))
    base = tmp_path / "base"
    assert _gen3d("train", "dit", "--config", str(config), "--data", str(prepared_small), "--vae", str(micro_vae),
                  "--out", str(base), "-q").returncode == 0
    meta_path = base / "model" / "config.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["latent_shift"], meta["config"]["latent_scale"] = 0.125, 2.5  # not what the data gives
    meta_path.write_text(json.dumps(meta))
    frozen = tmp_path / "frozen.yaml"
    frozen.write_text(yaml.safe_dump({**MICRO_DIT, "train": {**MICRO_DIT["train"], "lr": 0.0, "steps": 2}}))
    tuned = tmp_path / "tuned"
    result = _gen3d("train", "dit", "--config", str(frozen), "--data", str(prepared_small), "--vae", str(micro_vae),
                    "--out", str(tuned), "--init-from", str(base / "model"), "-q")
    assert result.returncode == 0, result.stderr
    start, end = (load_file(str(folder / "model.safetensors")) for folder in (base / "model", tuned / "model"))
    assert set(start) == set(end) and all(torch.allclose(start[k].float(), end[k].float(), atol=1e-6) for k in start)
    tuned_meta = json.loads((tuned / "model" / "config.json").read_text())["config"]
    assert (tuned_meta["latent_shift"], tuned_meta["latent_scale"]) == (0.125, 2.5)
    assert json.loads((tuned / "config.json").read_text())["init_from"] == str((base / "model").resolve())

    wider = tmp_path / "wider.yaml"
    wider.write_text(yaml.safe_dump({**MICRO_DIT, "model": {**MICRO_DIT["model"], "width": 64}}))
    refused = _gen3d("train", "dit", "--config", str(wider), "--data", str(prepared_small), "--vae", str(micro_vae),
                     "--out", str(tmp_path / "refused"), "--init-from", str(base / "model"), "-q")
    assert refused.returncode != 0 and "config_changed" in refused.stderr and "dit" in refused.stderr


def test_a_training_pack_trains_exactly_as_the_prepared_folders(tmp_path, prepared_small, micro_vae):
    """`gen3d train pack` then `gen3d train dit --data PACK`: the same latents and condition images
    (lossless WebP) as the folders give, so the same run gives bit-identical weights; a pack written
    for another image size is refused."""
    from safetensors.torch import load_file

    from gen3d.train.commands import resolve_config
    from gen3d.train.dit import DiTRunConfig, DiTTask

    config = tmp_path / "dit.yaml"
    config.write_text(yaml.safe_dump(MICRO_DIT))
    pack = tmp_path / "pack.npz"
    packed = _gen3d("train", "pack", "--config", str(config), "--data", str(prepared_small), "--vae", str(micro_vae),
                    "--out", str(pack), "-q")
    assert packed.returncode == 0, packed.stderr
    cfg = resolve_config(DiTRunConfig, config)
    cfg.data.vae = str(micro_vae)
    from_folders = DiTTask.from_prepared(cfg, prepared_small, tmp_path / "latents.safetensors")
    from_pack = DiTTask.from_pack(cfg, pack)
    for name in ("train_latents", "val_latents"):
        assert torch.equal(getattr(from_folders, name), getattr(from_pack, name))
    for name in ("train_images", "val_images"):
        expected, got = getattr(from_folders, name), getattr(from_pack, name)
        assert got.dtype == expected.dtype and got.shape == expected.shape and (got == expected).all()
    assert (from_pack.shift, from_pack.scale) == (from_folders.shift, from_folders.scale)

    weights = {}
    for name, data in (("folders", prepared_small), ("pack", pack)):
        run = tmp_path / name
        result = _gen3d("train", "dit", "--config", str(config), "--data", str(data), "--vae", str(micro_vae),
                        "--out", str(run), "-q")
        assert result.returncode == 0, result.stderr
        weights[name] = load_file(str(run / "model" / "model.safetensors"))
    assert all(torch.equal(weights["folders"][k], weights["pack"][k]) for k in weights["folders"])

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**MICRO_DIT, "encoder": {**MICRO_DIT["encoder"], "image_size": 32}}))
    refused = _gen3d("train", "dit", "--config", str(other), "--data", str(pack), "--out", str(tmp_path / "no"), "-q")
    assert refused.returncode != 0 and "bad_config" in refused.stderr and "image_size 64" in refused.stderr

    import numpy as np

    from gen3d.errors import InputError
    from gen3d.train.dit import read_pack

    np.savez(tmp_path / "other.npz", latents=np.zeros(3))
    with pytest.raises(InputError, match="not a gen3d DiT training pack"):
        read_pack(tmp_path / "other.npz", cfg)


def test_a_pack_with_fp16_latents_reads_back_the_latents_rounded_to_fp16(tmp_path, prepared_small, micro_vae):
    """`gen3d train pack --fp16-latents`: the training latents are the folders' rounded to float16 (so
    read as float32, exactly), the condition images unchanged, and the latents take half the bytes."""
    import numpy as np

    from gen3d.train.commands import resolve_config
    from gen3d.train.dit import DiTRunConfig, read_pack

    config = tmp_path / "dit.yaml"
    config.write_text(yaml.safe_dump(MICRO_DIT))
    packs = {}
    for name, flags in (("full", []), ("half", ["--fp16-latents"])):
        packs[name] = tmp_path / f"{name}.npz"
        packed = _gen3d("train", "pack", "--config", str(config), "--data", str(prepared_small), "--vae",
                        str(micro_vae), "--out", str(packs[name]), "-q", *flags)
        assert packed.returncode == 0, packed.stderr
    cfg = resolve_config(DiTRunConfig, config)
    full, half = read_pack(packs["full"], cfg), read_pack(packs["half"], cfg)
    for split in ("train", "val"):
        expected = full[f"{split}_latents"].half().float()
        assert half[f"{split}_latents"].dtype == torch.float32 and torch.equal(half[f"{split}_latents"], expected)
        assert not torch.equal(expected, full[f"{split}_latents"])  # the rounding did happen
        assert (half[f"{split}_images"] == full[f"{split}_images"]).all()
    with np.load(packs["full"]) as a, np.load(packs["half"]) as b:
        assert b["train_latents"].dtype == np.float16 and b["train_latents"].nbytes * 2 == a["train_latents"].nbytes
