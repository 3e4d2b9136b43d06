"""Model folders (CONVENTIONS): `model.safetensors` + `config.json`, written atomically, checked on load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import gen3d
from gen3d.errors import InputError

FORMAT_VERSION = 1


class CheckpointError(InputError):
    """A model folder that is missing, incomplete or of the wrong kind (exit code 2, reason `bad_checkpoint`)."""

    def __init__(self, message: str):
        super().__init__("bad_checkpoint", message)


def save_pretrained(folder: str | Path, state_dict: dict[str, torch.Tensor], model_type: str, config: dict,
                    *, dtype: torch.dtype | None = None, extra: dict | None = None) -> Path:
    """Write a model folder; floating tensors are cast to `dtype` when given (fp16 for bundled weights)."""
    folder = Path(folder)
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state_dict.items()}
    meta = {"format_version": FORMAT_VERSION, "gen3d_version": gen3d.__version__, "model_type": model_type,
            "dtype": str(dtype or "as_trained").replace("torch.", ""), "config": config, **(extra or {})}
    temp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    save_file(tensors, str(temp / "model.safetensors"))
    (temp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    temp.rename(folder)
    return folder


def load_pretrained(folder: str | Path, model_type: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict in float32, config.json contents) of a model folder of `model_type`."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{folder}: not a model folder ({path.name} is missing)")
    meta = json.loads(config_path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: format_version {meta.get('format_version')!r}, "
                              f"this gen3d reads {FORMAT_VERSION}")
    if meta.get("model_type") != model_type:
        raise CheckpointError(f"{folder}: holds a {meta.get('model_type')!r} model, expected {model_type!r}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights_path)).items()}
    return state, meta


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict with a message that names missing and unexpected keys."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).splitlines()[-1].strip()
        raise CheckpointError(f"{where}: weights do not match the model config ({detail})") from exc
    if missing or unexpected:
        raise CheckpointError(f"{where}: weights do not match the model (missing: {missing[:5]}, "
                              f"unexpected: {unexpected[:5]})")
