"""The shared training loop: schedule, data order, exact resume after SIGKILL, DDP == one process,
export and `gen3d eval vae` on the result."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gen3d.train.loop import TrainConfig, learning_rate, sample_indices

REPO = Path(__file__).resolve().parents[2]


def test_learning_rate_warmup_then_cosine():
    cfg = TrainConfig(steps=110, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert math.isclose(learning_rate(cfg, 0), 1e-4) and math.isclose(learning_rate(cfg, 9), 1e-3)
    assert math.isclose(learning_rate(cfg, 10), 1e-3)
    assert math.isclose(learning_rate(cfg, 60), 1e-4 + 0.9e-3 * 0.5)  # half-way through the cosine
    assert math.isclose(learning_rate(cfg, 110), 1e-4)


def test_sample_stream_is_a_permutation_per_epoch_and_position_addressable():
    indices, seeds = sample_indices(seed=3, size=7, start=0, count=21)
    for epoch in range(3):
        assert sorted(indices[7 * epoch: 7 * epoch + 7]) == list(range(7))
    assert indices[:7] != indices[7:14]  # a new order each epoch
    again, again_seeds = sample_indices(seed=3, size=7, start=9, count=5)  # what a resumed run asks for
    assert again == indices[9:14] and again_seeds == seeds[9:14] and len(set(seeds)) == 21


def _gen3d(*args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "gen3d.cli", "--threads", "1", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, **kwargs)


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_kill_and_resume_continues_the_uninterrupted_loss_curve(tmp_path, prepared_small, micro_config):
    config = micro_config(steps=160, checkpoint_every=5, val_every=0)
    args = ["train", "vae", "--config", str(config), "--data", str(prepared_small), "-q"]
    whole = _gen3d(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "gen3d.cli", "--threads", "1", *args, "--out", str(run)],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 37:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (run / "model").exists()
    killed_at = max(_losses(run))
    resumed = _gen3d(*args, "--out", str(run))
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _losses(tmp_path / "whole"), _losses(run)
    assert sorted(got) == sorted(expected) == list(range(1, 161))
    assert 30 < killed_at < 160
    np.testing.assert_allclose([got[s] for s in sorted(got)], [expected[s] for s in sorted(expected)], rtol=1e-6)
    from safetensors.torch import load_file

    a = load_file(str(run / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resume_refuses_a_changed_config(tmp_path, prepared_small, micro_config):
    args = ["train", "vae", "--data", str(prepared_small), "--out", str(tmp_path / "run"), "-q"]
    assert _gen3d(*args, "--config", str(micro_config(steps=2))).returncode == 0
    changed = _gen3d(*args, "--config", str(micro_config(steps=2, lr=5e-4)), "--json")
    assert changed.returncode == 2 and json.loads(changed.stdout)["reason"] == "config_changed"


def test_ddp_two_processes_equal_one_process(tmp_path, prepared_small, micro_config):
    """torchrun with 2 gloo ranks (each half the batch) follows the same loss curve and weights as one
    process with the whole batch: the data split and the gradient averaging are right."""
    config = micro_config(steps=6, val_every=0)
    args = ["train", "vae", "--config", str(config), "--data", str(prepared_small), "-q"]
    single = _gen3d(*args, "--out", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "gen3d.cli", "--threads", "1", *args, "--out", str(tmp_path / "ddp")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert sorted(one) == sorted(two) == list(range(1, 7))
    np.testing.assert_allclose([two[s] for s in one], [one[s] for s in one], rtol=1e-5)
    from safetensors.torch import load_file

    a, b = (load_file(str(tmp_path / name / "model" / "model.safetensors")) for name in ("single", "ddp"))
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_export_fp16_and_eval_vae_json(tmp_path, prepared_small, micro_config):
    run = tmp_path / "run"
    assert _gen3d("train", "vae", "--config", str(micro_config(steps=4)), "--data", str(prepared_small),
                  "--out", str(run), "-q").returncode == 0
    exported = _gen3d("train", "export", str(run), "--out", str(tmp_path / "vae16"), "--fp16", "--json")
    assert exported.returncode == 0, exported.stderr
    meta = json.loads((tmp_path / "vae16" / "config.json").read_text())
    assert meta["model_type"] == "D3DVAE" and meta["dtype"] == "float16" and meta["trained_steps"] == 4
    from gen3d.geometry.export import save_mesh
    from gen3d.geometry.procedural import generate_shape

    save_mesh(generate_shape("torus", 1_000_001)[0], tmp_path / "torus.obj")
    result = _gen3d("eval", "vae", "--checkpoint", str(tmp_path / "vae16"), "--meshes", str(tmp_path / "torus.obj"),
                    "--resolution", "32", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] and len(payload["meshes"]) == 1 and set(payload["mean"]) == {"iou", "chamfer_l1", "fscore"}
    row = payload["meshes"][0]
    assert 0.0 <= row["iou"] <= 1.0 and 0.0 <= row["fscore"] <= 1.0
    missing = _gen3d("eval", "vae", "--checkpoint", str(tmp_path / "nothing"), "--meshes", str(tmp_path / "torus.obj"))
    assert missing.returncode == 2 and "not a model folder" in missing.stderr


def test_vae_init_from_starts_from_the_model_and_several_data_folders_are_joined(tmp_path, prepared_small,
                                                                                micro_config):
    """A lr-0 run initialized from a trained VAE exports that VAE's weights; with --data given twice
    the train split is read from both (the run's config lists both folders)."""
    from safetensors.torch import load_file

    base = tmp_path / "base"
    assert _gen3d("train", "vae", "--config", str(micro_config(steps=3)), "--data", str(prepared_small),
                  "--out", str(base), "-q").returncode == 0
    tuned = tmp_path / "tuned"
    result = _gen3d("train", "vae", "--config", str(micro_config(steps=1, lr=0.0)), "--data", str(prepared_small),
                    str(prepared_small), "--out", str(tuned), "--init-from", str(base / "model"), "-q")
    assert result.returncode == 0, result.stderr
    start, end = (load_file(str(run / "model" / "model.safetensors")) for run in (base, tuned))
    assert all(torch.allclose(start[k], end[k], atol=1e-6) for k in start)
    assert json.loads((tuned / "config.json").read_text())["data_path"] == [str(prepared_small.resolve())] * 2
    base_meta = json.loads((base / "model" / "config.json").read_text())
    lineage = {"trained_steps": 3, "train_seconds": base_meta["train_seconds"]}
    assert json.loads((tuned / "model" / "config.json").read_text())["fine_tuned_from"] == lineage
    assert _gen3d("train", "export", str(tuned), "--out", str(tmp_path / "exported"), "--weights", "live",
                  "-q").returncode == 0  # from the checkpoint: the lineage comes from model_config.json
    assert json.loads((tmp_path / "exported" / "config.json").read_text())["fine_tuned_from"] == lineage
    assert "fine_tuned_from" not in base_meta
    fresh = tmp_path / "fresh"
    assert _gen3d("train", "vae", "--config", str(micro_config(steps=1, lr=0.0)), "--data", str(prepared_small),
                  "--out", str(fresh), "-q").returncode == 0
    untrained = load_file(str(fresh / "model" / "model.safetensors"))
    assert not all(torch.allclose(start[k], v, atol=1e-6) for k, v in untrained.items())
    missing = _gen3d("train", "vae", "--config", str(micro_config(steps=1)), "--data", str(prepared_small),
                     "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a model folder" in missing.stderr


def test_freeze_keeps_the_named_parameters_and_trains_the_rest(tmp_path, prepared_small, micro_config):
    """train.freeze [encoder] on a VAE fine-tune: every encoder weight is exactly the init model's
    (so its latents stay valid), the decoder's move; a prefix matching nothing is refused."""
    from safetensors.torch import load_file

    base = tmp_path / "base"
    assert _gen3d("train", "vae", "--config", str(micro_config(steps=2)), "--data", str(prepared_small),
                  "--out", str(base), "-q").returncode == 0
    tuned = tmp_path / "tuned"
    result = _gen3d("train", "vae", "--config", str(micro_config(steps=3, freeze=["encoder"])), "--data",
                    str(prepared_small), "--out", str(tuned), "--init-from", str(base / "model"), "-q")
    assert result.returncode == 0, result.stderr
    start, end = (load_file(str(run / "model" / "model.safetensors")) for run in (base, tuned))
    encoder = [k for k in start if k.startswith("encoder.")]
    assert encoder and all(torch.equal(start[k], end[k]) for k in encoder)
    assert any(not torch.allclose(start[k], end[k]) for k in start if k.startswith("decoder."))
    wrong = _gen3d("train", "vae", "--config", str(micro_config(steps=1, freeze=["nothing"])), "--data",
                   str(prepared_small), "--out", str(tmp_path / "wrong"))
    assert wrong.returncode == 2 and "bad_config" in wrong.stderr and "no parameter name starts with" in wrong.stderr


def test_resume_guard_allows_a_new_length_and_keys_added_later(tmp_path):
    from gen3d.errors import InputError
    from gen3d.train.commands import check_resume

    saved = {"task": "vae", "data": {"queries": 4}, "train": {"steps": 10, "lr": 1e-3}}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    longer = {"task": "vae", "data": {"queries": 4, "include": []}, "train": {"steps": 20, "lr": 1e-3}}
    check_resume(tmp_path, longer, force=False)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["steps"] == 20
    with pytest.raises(InputError, match="train"):
        check_resume(tmp_path, {**longer, "train": {"steps": 20, "lr": 5e-4}}, force=False)


def test_dataset_include_patterns_select_by_source(prepared_small):
    from gen3d.errors import InputError
    from gen3d.train.vae import prepared_assets

    rows = [json.loads(line) for line in (prepared_small / "manifest.jsonl").read_text().splitlines()]
    tables = {r["id"] for r in rows if r["status"] == "ok" and r["source"].startswith("table_")}
    assert {p.name for p in prepared_assets(prepared_small, None, ("table_*",))} == tables and tables
    with pytest.raises(InputError, match="no prepared assets"):
        prepared_assets(prepared_small, None, ("nothing_*",))


def test_dataset_repeat_oversamples_by_source_and_loads_once(prepared_small):
    from gen3d.errors import InputError
    from gen3d.train.vae import ShapeSet, prepared_assets

    rows = [json.loads(line) for line in (prepared_small / "manifest.jsonl").read_text().splitlines()]
    sources = {prepared_small / r["id"]: r["source"] for r in rows}
    assets = prepared_assets(prepared_small, None)
    out = prepared_assets(prepared_small, None, repeat={"table_*": 3, "t*": 2})  # the largest matching factor counts
    expected = sum(3 if sources[a].startswith("table_") else 2 if sources[a].startswith("t") else 1 for a in assets)
    table = next(a for a in assets if sources[a].startswith("table_"))
    assert len(out) == expected > len(assets) and out.count(table) == 3 and sorted(set(out)) == sorted(assets)
    assert prepared_assets(prepared_small, None, repeat={}) == assets
    with pytest.raises(InputError, match="whole number"):
        prepared_assets(prepared_small, None, repeat={"table_*": 0})
    shapes = ShapeSet(out[:4] + out[:4])
    assert len(shapes) == 8 and shapes.surface[0] is shapes.surface[4]


def test_gradient_accumulation_equals_the_whole_batch(tmp_path, prepared_small, micro_config):
    """batch 4 in 2 micro-batches of 2 == batch 4 at once: same losses and weights (mean gradients)."""
    runs = {}
    for accum in (1, 2):
        config = micro_config(steps=4, val_every=0, grad_accum=accum)
        out = tmp_path / f"accum{accum}"
        result = _gen3d("train", "vae", "--config", str(config), "--data", str(prepared_small), "--out", str(out), "-q")
        assert result.returncode == 0, result.stderr
        runs[accum] = out
    one, two = _losses(runs[1]), _losses(runs[2])
    np.testing.assert_allclose([two[s] for s in sorted(one)], [one[s] for s in sorted(one)], rtol=1e-5)
    from safetensors.torch import load_file

    a, b = (load_file(str(runs[k] / "model" / "model.safetensors")) for k in (1, 2))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_bad_config_is_a_usage_error(tmp_path, prepared_small):
    config = tmp_path / "bad.yaml"
    config.write_text("preset: tiny\ntrain: {stepz: 3}\n")
    result = _gen3d("train", "vae", "--config", str(config), "--data", str(prepared_small), "--out",
                    str(tmp_path / "run"), "--json")
    assert result.returncode == 2 and json.loads(result.stdout)["reason"] == "bad_config"
    assert "stepz" in json.loads(result.stdout)["message"]
