"""`gen3d train ...` entry points: resolve the YAML config, guard resumes, run the loop, export weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gen3d.errors import InputError
from gen3d.train.loop import find_resume, train
from gen3d.utils.checkpoint import CheckpointError, load_pretrained, save_pretrained
from gen3d.utils.config import load_yaml, to_dict


def resolve_config(kind, config_path: str | Path | None, overrides: dict | None = None):
    """The run config of class `kind` from YAML (`preset:` plus sections), with `train.*` overrides;
    InputError `bad_config` for a missing file, unknown keys or an unknown preset."""
    try:
        cfg = load_yaml(kind, config_path) if config_path else kind()
        for key, value in (overrides or {}).items():
            if value is not None:
                setattr(cfg.train, key, value)
        cfg.model_config()  # unknown presets or model keys fail here, before any data is read
    except (OSError, ValueError, TypeError) as exc:
        raise InputError("bad_config", f"{config_path or 'default config'}: {exc}") from exc
    return cfg


RESUMABLE_CHANGES = ("steps",)  # train.* keys a resumed run may change (a longer or shorter schedule)


def check_resume(run: Path, resolved: dict, force: bool) -> None:
    """Refuse to continue a run folder whose saved config differs (unless force: then start over).
    Only the run length may change on resume (the cosine schedule then follows the new length); keys
    that a newer gen3d added to a section, absent from the saved config, count as unchanged."""
    saved = run / "config.json"
    if not saved.is_file():
        return
    previous = json.loads(saved.read_text())
    comparable = dict(resolved)
    for section, values in resolved.items():
        if isinstance(values, dict) and isinstance(previous.get(section), dict):
            comparable[section] = {k: v for k, v in values.items() if k in previous[section]}
    comparable["train"] = {**comparable["train"], **{k: previous["train"].get(k) for k in RESUMABLE_CHANGES}}
    if previous == comparable:
        if previous != resolved:
            saved.write_text(json.dumps(resolved, indent=2) + "\n")
        return
    if not force:
        changed = sorted(k for k in set(previous) | set(resolved) if previous.get(k) != resolved.get(k))
        raise InputError("config_changed", f"{run} was trained with a different config "
                         f"(sections {', '.join(changed)}); "
                         "use another --out, or --force to start it over")
    import shutil

    shutil.rmtree(run)


def _prepare_run(task: str, cfg, data, val_data, out, force: bool, init_from=None) -> tuple[Path, dict]:
    """The resolved config of a run (what config.json holds) after the resume guard passed."""
    folders = [data] if isinstance(data, (str, Path)) else list(data)
    paths = [str(Path(folder).resolve()) for folder in folders]
    resolved = {"task": task, **to_dict(cfg), "data_path": paths[0] if len(paths) == 1 else paths,
                "val_data_path": str(Path(val_data).resolve()) if val_data else None}
    if init_from is not None:  # only when given, so that runs saved before the option still resume
        resolved["init_from"] = str(Path(init_from).resolve())
    resolved["model"] = to_dict(cfg.model_config())
    run = Path(out)
    check_resume(run, json.loads(json.dumps(resolved)), force)
    return run, resolved


def _init_weights(init_from, model_type: str, expected: dict) -> tuple[dict | None, dict | None]:
    """(state dict, config.json contents) of the model folder a fine-tuning run starts from; its model
    config must equal the run's (InputError `config_changed` naming the differing keys)."""
    if init_from is None:
        return None, None
    try:
        state, meta = load_pretrained(init_from, model_type)
    except CheckpointError as exc:
        raise InputError("bad_checkpoint", f"--init-from {init_from}: {exc}") from exc
    config = meta["config"]
    as_json = lambda value: json.loads(json.dumps(value))  # noqa: E731  (tuples and lists compare alike)
    differing = sorted(k for k in expected if as_json(config.get(k)) != as_json(expected[k]))
    if differing:
        raise InputError("config_changed", f"--init-from {init_from}: its model differs from the config's "
                         f"({', '.join(differing)})")
    return state, meta


def train_vae(config_path, data, out, *, val_data=None, init_from=None, device="cpu", force=False,
              progress=True, generated=None, **overrides) -> Path:
    """`generated`: a generated-latent bank (overrides data.generated; `bank_generated`)."""
    from gen3d.stages.shape_vae.model import MODEL_TYPE as VAE_TYPE
    from gen3d.train.vae import VAERunConfig, VAETask

    cfg = resolve_config(VAERunConfig, config_path, overrides)
    if generated is not None:
        cfg.data.generated = str(Path(generated).resolve())
    run, resolved = _prepare_run("vae", cfg, data, val_data, out, force, init_from)
    state, init_meta = _init_weights(init_from, VAE_TYPE, to_dict(cfg.model_config()))
    task = VAETask(cfg, data, val_data)
    return train(task, cfg.train, run, resolved_config=resolved, device=device, progress=progress, init_state=state,
                 init_meta=init_meta)


def train_dit(config_path, data, out, *, val_data=None, vae=None, init_from=None, device="cpu", force=False,
              progress=True, **overrides) -> Path:
    """`init_from`: a DiT model folder to fine-tune (same model config; its latent shift/scale are kept)."""
    from dataclasses import asdict

    from gen3d.train.dit import MODEL_TYPE as DIT_TYPE
    from gen3d.train.dit import DiTRunConfig, DiTTask

    cfg = resolve_config(DiTRunConfig, config_path, overrides)
    if vae is not None:
        cfg.data.vae = str(Path(vae).resolve())
    run, resolved = _prepare_run("dit", cfg, data, val_data, out, force, init_from)
    expected = {"dit": asdict(cfg.model_config()), "encoder": asdict(cfg.encoder), "schedule": cfg.data.schedule}
    state, init_meta = _init_weights(init_from, DIT_TYPE, expected)
    run.mkdir(parents=True, exist_ok=True)
    norm = (init_meta["config"]["latent_shift"], init_meta["config"]["latent_scale"]) if init_meta else None
    pack = _single_file(data)
    if pack is not None:
        if val_data is not None:
            raise InputError("bad_config", f"{pack} is a training pack (it holds its val set): drop --val-data")
        task = DiTTask.from_pack(cfg, pack, latent_norm=norm)
    else:
        task = DiTTask.from_prepared(cfg, data, run / "latents.safetensors", val_data, latent_norm=norm)
    return train(task, cfg.train, run, resolved_config=resolved, device=device, progress=progress, init_state=state,
                 init_meta=init_meta)


def _single_file(data) -> Path | None:
    """The path when `data` names one file (a DiT training pack) rather than prepared folders."""
    folders = [data] if isinstance(data, (str, Path)) else list(data)
    return Path(folders[0]) if len(folders) == 1 and Path(folders[0]).is_file() else None


def pack_dit(config_path, data, out, *, val_data=None, vae=None, fp16_latents: bool = False) -> Path:
    """`gen3d train pack`: the DiT's training set (latents of `vae`, condition images) in one file, for
    `gen3d train dit --data PACK` on a machine without the prepared folders; the latent cache is kept
    beside it (OUT.latents.safetensors) and reused."""
    from gen3d.train.dit import DiTRunConfig, write_pack

    cfg = resolve_config(DiTRunConfig, config_path)
    if vae is not None:
        cfg.data.vae = str(Path(vae).resolve())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_pack(cfg, data, out.with_name(out.name + ".latents.safetensors"), out, val_data, fp16_latents)


def bank_generated(data, out, *, model=None, views: int = 4, seed: int = 100_000, progress=True) -> Path:
    """`gen3d train bank`: the image -> 3D model's (default: the bundled one) DiT samples of the train split
    of `data`, with its generation defaults, for `gen3d train vae --generated` (gen3d.train.generated)."""
    from gen3d.pipelines.image_to_3d import ImageTo3D
    from gen3d.train.generated import write_bank

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_bank(ImageTo3D.from_pretrained(model), data, out, views=views, seed=seed, progress=progress)


def export_model(run: str | Path, out: str | Path, *, fp16: bool = False, weights: str = "ema") -> Path:
    """Write a model folder from a run: its exported EMA model, or the live/EMA weights of its last checkpoint."""
    run = Path(run)
    if weights == "ema" and (run / "model" / "config.json").is_file():
        meta = json.loads((run / "model" / "config.json").read_text())
        state, meta = load_pretrained(run / "model", meta["model_type"])
    else:
        resume = find_resume(run)
        if resume is None or not (run / "model_config.json").is_file():
            raise InputError("missing_file", f"{run}: no finished model and no checkpoint to export")
        from safetensors.torch import load_file

        state = load_file(str(resume / ("ema.safetensors" if weights == "ema" else "model.safetensors")))
        progress = json.loads((resume / "state.json").read_text())
        meta = {**json.loads((run / "model_config.json").read_text()), "trained_steps": progress["step"],
                "train_seconds": progress.get("train_seconds")}
    extra = {"trained_steps": meta.get("trained_steps"), "train_seconds": meta.get("train_seconds"), "weights": weights}
    if "fine_tuned_from" in meta:
        extra["fine_tuned_from"] = meta["fine_tuned_from"]
    return save_pretrained(out, state, meta["model_type"], meta["config"],
                           dtype=torch.float16 if fp16 else None, extra=extra)
