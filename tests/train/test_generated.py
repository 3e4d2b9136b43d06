"""Generated-latent banks and the generator-aware decoder fine-tune: quarter turns against hand-written
rotations, the turn finder on an analytic shape, the VAE task decoding bank latents toward the truth
turned like them, and `gen3d train bank` -> `gen3d train vae --generated` on micro models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from gen3d.train.generated import BANK_FORMAT, TURNS, GeneratedBank, best_turns, turn_points
from tests.micro_models import write_micro_model
from tests.train.conftest import MICRO


def test_quarter_turns_move_the_axes_like_the_ring():
    """+90 turns +Z (the front) toward +X, like the ring's azimuths; four quarter turns are no turn."""
    axes = torch.eye(3, dtype=torch.float64)  # rows +X, +Y, +Z
    turned = turn_points(axes, 90.0)
    assert torch.allclose(turned, torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]], dtype=torch.float64), atol=1e-12)
    points = torch.randn(50, 3, dtype=torch.float64)
    four = points
    for _ in range(4):
        four = turn_points(four, 90.0)
    assert torch.allclose(four, points, atol=1e-12)
    assert torch.allclose(turn_points(turn_points(points, 270.0), 90.0), points, atol=1e-12)


def _box(points: torch.Tensor) -> torch.Tensor:
    """An off-centre box (no quarter-turn symmetry): (..., 3) -> (...) bool."""
    x, y, z = points.unbind(-1)
    return ((x - 0.3).abs() < 0.4) & (y.abs() < 0.5) & (z.abs() < 0.2)


class TurnedBoxVAE:
    """A stand-in decoder: latent k 'decodes' to the box turned by degrees z[k, 0, 0, 0]."""

    def decode(self, z):
        return z

    def query(self, planes, points):  # (B, M, 3) -> (B, M) logits
        out = []
        for degrees, p in zip(planes[:, 0, 0, 0].tolist(), points):
            out.append(torch.where(_box(turn_points(p, -degrees)), 5.0, -5.0))  # occupied where the box, turned back
        return torch.stack(out)


def test_best_turn_finds_how_a_sample_is_turned():
    generator = torch.Generator().manual_seed(0)
    queries = torch.rand(len(TURNS), 4096, 3, generator=generator, dtype=torch.float64) * 2 - 1  # (B, M, 3)
    inside = _box(queries)
    latents = torch.zeros(len(TURNS), 1, 1, 1, dtype=torch.float64)
    latents[:, 0, 0, 0] = torch.tensor(TURNS)
    turns, ious = best_turns(TurnedBoxVAE(), latents, queries, inside)
    assert turns.tolist() == list(TURNS)
    assert np.allclose(ious, 1.0)
    # the decoder at R q reads the truth at q: what the fine-tune trains on
    for k, degrees in enumerate(turns):
        read = TurnedBoxVAE().query(latents[k: k + 1], turn_points(queries[k: k + 1], degrees)) > 0
        assert torch.equal(read[0], inside[k])


def _write_bank(path, names, latents, turns):
    np.savez(path, format=np.array(BANK_FORMAT), settings=np.array("{}"), names=np.array(names),
             latents=latents.astype(np.float16), turns=turns.astype(np.float32),
             ious=np.ones(turns.shape, np.float32))
    return path


def _task(prepared, **data):
    from gen3d.train.vae import VAERunConfig, VAETask
    from gen3d.utils.config import from_dict

    cfg = from_dict(VAERunConfig, {**MICRO, "data": {**MICRO["data"], **data}}, where="test")
    return VAETask(cfg, prepared)


def test_vae_task_decodes_bank_latents_toward_the_turned_truth(tmp_path, prepared_small):
    plain = _task(prepared_small)
    names = [a.name for a in plain.train_set.assets]
    latent_shape = plain.model_cfg.latent_shape
    latents = np.random.default_rng(0).standard_normal((len(names), 2, *latent_shape))
    bank = _write_bank(tmp_path / "bank.npz", names, latents, np.full((len(names), 2), 90.0))
    always = _task(prepared_small, generated=str(bank), generated_fraction=1.0)
    never = _task(prepared_small, generated=str(bank), generated_fraction=0.0)
    indices, seeds = [0, 3, 5, 7], [11, 12, 13, 14]
    reference = plain.make_batch(indices, seeds, "cpu")
    batch = always.make_batch(indices, seeds, "cpu")
    assert batch["use_generated"].all()
    for k, i in enumerate(indices):  # one of the asset's two views, exactly as stored (float16)
        stored = torch.from_numpy(latents[i].astype(np.float16).astype(np.float32))
        assert any(torch.equal(batch["generated"][k], view) for view in stored)
    assert torch.allclose(batch["queries"], turn_points(reference["queries"], 90.0))
    assert torch.equal(batch["labels"], reference["labels"])
    assert not never.make_batch(indices, seeds, "cpu")["use_generated"].any()

    torch.manual_seed(0)
    model = always.build_model()
    loss, parts = always.loss(model, batch)
    with torch.no_grad():  # the bank's latents decoded at the turned queries, against the unturned labels
        logits = model.query(model.decode(batch["generated"]), batch["queries"])
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"])
    assert torch.allclose(parts["bce"], expected, atol=1e-6)
    assert GeneratedBank(bank).views == 2

    from gen3d.errors import InputError

    other = _write_bank(tmp_path / "other.npz", names, latents[..., :2], np.zeros((len(names), 2)))
    with pytest.raises(InputError, match="a bank of another model"):
        _task(prepared_small, generated=str(other))


def test_a_file_that_is_not_a_bank_is_refused(tmp_path):
    from gen3d.errors import InputError

    np.save(tmp_path / "one.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", format=np.array("something-else"))
    for path in (tmp_path / "one.npy", tmp_path / "other.npz", tmp_path / "missing.npz"):
        with pytest.raises(InputError, match="not a generated-latent bank"):
            GeneratedBank(path)


@pytest.fixture
def micro_pipeline(tmp_path):
    """A micro image -> 3D model folder whose VAE has the micro training config's architecture."""
    return write_micro_model(tmp_path / "model", MICRO["model"], {"sampler": "unipc_bh2", "steps": 3, "guidance": 1.0})


def test_bank_then_a_decoder_fine_tune_on_it(tmp_path, prepared_small, micro_pipeline, micro_config):
    from gen3d import cli
    from gen3d.stages.shape_dit.sample import LatentSampler
    from gen3d.train.dit import condition_image
    from gen3d.train.vae import prepared_assets
    from gen3d.utils.checkpoint import load_pretrained

    bank_path = tmp_path / "bank.npz"
    assert cli.main(["--quiet", "train", "bank", "--data", str(prepared_small), "--model", str(micro_pipeline),
                     "--views", "2", "--seed", "50", "--out", str(bank_path)]) == 0
    bank = GeneratedBank(bank_path)
    assets = prepared_assets(prepared_small, "train")
    assert list(bank.index) == [a.name for a in assets] and bank.latents.shape == (len(assets), 2, 4, 4, 12)
    assert set(np.unique(bank.turns)) <= set(TURNS)
    settings = json.loads(str(np.load(bank_path)["settings"]))
    assert (settings["sampler"], settings["steps"], settings["guidance"]) == ("unipc_bh2", 3, 1.0)
    # asset 3's view 1, sampled alone with its seed (50 + 3 * 2 + 1), is what the bank holds
    sampler = LatentSampler.from_pretrained(micro_pipeline / "dit")
    image = torch.from_numpy(condition_image(assets[3], 1, 64)).permute(2, 0, 1)[None].float().div(255)
    alone = sampler(image, [57], sampler="unipc_bh2", steps=3, guidance=1.0)[0]
    assert torch.allclose(bank.get(assets[3].name, 1)[0], alone, atol=2e-3)  # float16 storage

    config = tmp_path / "decoder.yaml"
    spec = yaml.safe_load(micro_config(steps=2, freeze=["encoder"]).read_text())
    spec["data"]["generated_fraction"] = 0.5
    config.write_text(yaml.safe_dump(spec))
    run = tmp_path / "run"
    assert cli.main(["--quiet", "train", "vae", "--config", str(config), "--data", str(prepared_small),
                     "--generated", str(bank_path), "--init-from", str(micro_pipeline / "vae"),
                     "--out", str(run)]) == 0
    start, _ = load_pretrained(micro_pipeline / "vae", "D3DVAE")
    tuned, meta = load_pretrained(run / "model", "D3DVAE")
    assert all(torch.equal(tuned[k], start[k]) for k in start if k.startswith("encoder."))
    assert any(not torch.equal(tuned[k], start[k]) for k in start if k.startswith("decoder."))
    assert json.loads((run / "config.json").read_text())["data"]["generated"] == str(bank_path.resolve())
