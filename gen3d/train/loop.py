"""The training loop shared by every gen3d model: AdamW, warm-up + cosine, clipping, EMA, gradient
accumulation, bf16 autocast on GPU, periodic validation, exact resume after a kill, torchrun DDP.

A model plugs in as a `Task` (build the model, make a batch from sample indices, compute the loss,
validate). The data order is a pure function of (seed, position in the sample stream), and each
sample comes with a seed derived from its position, from which the task draws all of that sample's
randomness; so a resumed run repeats exactly what the uninterrupted run would have done, and DDP
ranks together repeat what one process does.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from gen3d.errors import InputError
from gen3d.utils.checkpoint import load_into, save_pretrained


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping; every model's YAML has a `train:` section of these keys."""

    steps: int = 10_000
    batch_size: int = 8  # global batch per optimizer step (split over DDP ranks and accumulation)
    grad_accum: int = 1
    lr: float = 1e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 200
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    ema_decay: float = 0.999
    log_every: int = 10
    val_every: int = 500  # 0 disables periodic validation
    checkpoint_every: int = 200
    seed: int = 0
    precision: str = "auto"  # "auto" = bf16 autocast on CUDA, fp32 on CPU; or "fp32", "bf16"
    freeze: tuple = ()  # parameter-name prefixes kept fixed, e.g. [encoder]: a VAE's decoder tuned, its latents kept


class Task(Protocol):
    """What a model provides to the loop."""

    model_type: str

    def build_model(self) -> nn.Module: ...

    def model_config(self) -> dict: ...

    def train_size(self) -> int: ...

    def make_batch(self, indices: list[int], seeds: list[int], device: torch.device) -> dict: ...

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]: ...

    def validate(self, model: nn.Module, device: torch.device) -> dict: ...


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to cfg.lr, then cosine to cfg.lr * min_lr_ratio at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def sample_indices(seed: int, size: int, start: int, count: int) -> tuple[list[int], list[int]]:
    """Dataset indices and per-sample seeds at positions [start, start + count) of the sample stream
    (one seeded permutation per epoch)."""
    indices, seeds = [], []
    for position in range(start, start + count):
        epoch, offset = divmod(position, size)
        indices.append(int(_epoch_permutation(seed, epoch, size)[offset]))
        seeds.append(int(np.random.default_rng([seed, 1, position]).integers(2**62)))
    return indices, seeds


@functools.lru_cache(maxsize=2)
def _epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(size)


# ---------------------------------------------------------------- checkpoints


def _save_state(folder: Path, model: nn.Module, ema: dict, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Training state (weights, EMA, AdamW moments, step) in safetensors + JSON, replaced atomically."""
    temp, old = folder.with_name(".tmp-last"), folder.with_name(".old-last")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(temp / "model.safetensors"))
    save_file({k: v.cpu().contiguous() for k, v in ema.items()}, str(temp / "ema.safetensors"))
    opt = optimizer.state_dict()
    moments = {f"{i}.{name}": value.cpu().reshape(-1) if value.dim() == 0 else value.cpu().contiguous()
               for i, slots in opt["state"].items() for name, value in slots.items()}
    save_file(moments, str(temp / "optimizer.safetensors"))
    (temp / "state.json").write_text(json.dumps({**state, "param_groups": opt["param_groups"]}, indent=1))
    if folder.exists():
        folder.rename(old)
    temp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_state(folder: Path, model: nn.Module, ema: dict, optimizer: torch.optim.Optimizer) -> dict:
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    for k, v in load_file(str(folder / "ema.safetensors")).items():
        ema[k].copy_(v)
    state = json.loads((folder / "state.json").read_text())
    slots: dict[int, dict] = {}
    for key, value in load_file(str(folder / "optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    optimizer.load_state_dict({"state": slots, "param_groups": state.pop("param_groups")})
    return state


def find_resume(run: Path) -> Path | None:
    """The last complete training state of a run folder (a kill between the renames leaves .old-last)."""
    for name in ("last", ".old-last"):
        folder = run / "checkpoints" / name
        if (folder / "state.json").is_file():
            return folder
    return None


# ---------------------------------------------------------------- the loop


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _autocast(cfg: TrainConfig, device: torch.device):
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)


class _Metrics:
    """metrics.jsonl (rank 0), truncated to the resumed step; TensorBoard too when it is installed."""

    def __init__(self, run: Path, resume_step: int, enabled: bool):
        self.path, self.enabled, self.board = run / "metrics.jsonl", enabled, None
        if not enabled:
            return
        if self.path.exists():
            rows = [line for line in self.path.read_text().splitlines() if line.strip()]
            kept = [r for r in rows if json.loads(r)["step"] <= resume_step]
            self.path.write_text("".join(r + "\n" for r in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            SummaryWriter = None
        if SummaryWriter is not None:
            self.board = SummaryWriter(str(run / "tensorboard"))

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as stream:
            stream.write(json.dumps(row) + "\n")
        if self.board is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self.board.add_scalar(key, value, row["step"])


def train(task: Task, cfg: TrainConfig, run: str | Path, *, resolved_config: dict, device: str = "cpu",
          progress: bool = True, init_state: dict | None = None, init_meta: dict | None = None) -> Path:
    """Train `task` into run folder `run` (resuming from its last checkpoint; a new run starts from
    `init_state`, a model state dict, when given: fine-tuning, with `init_meta` the config.json of the
    model it came from, whose training totals the exported model records as `fine_tuned_from`); returns
    the exported EMA model folder run/model."""
    run, device = Path(run), torch.device(device)
    rank, world = _distributed()
    if cfg.batch_size % (world * cfg.grad_accum):
        raise ValueError(f"batch_size {cfg.batch_size} must divide by ranks x grad_accum = {world * cfg.grad_accum}")
    local = cfg.batch_size // (world * cfg.grad_accum)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = task.build_model().to(device)
    if init_state is not None:
        load_into(model, init_state, "--init-from")
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    frozen = {name for name, _ in model.named_parameters() if cfg.freeze and name.startswith(tuple(cfg.freeze))}
    if cfg.freeze and not frozen:
        raise InputError("bad_config", f"train.freeze {list(cfg.freeze)}: no parameter name starts with these")
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 or name.endswith(".tokens") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=tuple(cfg.betas))
    step, spent = 0, 0.0  # spent: wall seconds of training up to the loaded checkpoint, over all resumes
    resume = find_resume(run)
    if resume is not None:
        state = _load_state(resume, model, ema, optimizer)
        step, spent = state["step"], state.get("train_seconds", 0.0)
    elif rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(resolved_config, indent=2) + "\n")
    lineage = {} if init_meta is None else {"fine_tuned_from": {
        k: init_meta[k] for k in ("trained_steps", "train_seconds", "fine_tuned_from") if k in init_meta}}
    if rank == 0:  # what export needs to rebuild the model from a checkpoint
        (run / "model_config.json").write_text(json.dumps({"model_type": task.model_type,
                                                           "config": task.model_config(), **lineage}, indent=1) + "\n")
    wrapped = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    metrics = _Metrics(run, step, enabled=rank == 0)
    bar = _progress(cfg.steps, step, enabled=progress and rank == 0)
    last_val: dict = {}
    clock = time.perf_counter()
    while step < cfg.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        optimizer.zero_grad(set_to_none=True)
        total, logs = 0.0, {}
        for micro in range(cfg.grad_accum):
            start = (step * cfg.grad_accum + micro) * cfg.batch_size // cfg.grad_accum + rank * local
            indices, seeds = sample_indices(cfg.seed, task.train_size(), start, local)
            batch = task.make_batch(indices, seeds, device)
            sync = micro == cfg.grad_accum - 1 or world == 1
            context = wrapped.no_sync() if not sync else _null()
            with context, _autocast(cfg, device):
                loss, parts = task.loss(wrapped, batch)
            with context:
                (loss / cfg.grad_accum).backward()
            total += float(loss.detach()) / cfg.grad_accum
            for k, v in parts.items():
                logs[k] = logs.get(k, 0.0) + float(v) / cfg.grad_accum
        norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        optimizer.step()
        step += 1
        _update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)), frozen)
        if world > 1:
            total = _mean_over_ranks(total, device)
        if step % cfg.log_every == 0 or step == cfg.steps:
            metrics.write({"step": step, "loss": total, **logs, "lr": learning_rate(cfg, step - 1),
                           "grad_norm": float(norm), "train_seconds": round(spent + time.perf_counter() - clock, 2)})
        if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps) and rank == 0:
            last_val = {f"val/{k}": v for k, v in _validate_ema(task, model, ema, device).items()}
            metrics.write({"step": step, **last_val})
        if (step % cfg.checkpoint_every == 0 or step == cfg.steps) and rank == 0:
            _save_state(run / "checkpoints" / "last", model, ema, optimizer,
                        {"step": step, "train_seconds": round(spent + time.perf_counter() - clock, 2)})
        bar.update(1)
        bar.set_postfix(loss=f"{total:.4f}", **{k.replace("/", "_"): f"{v:.3f}" for k, v in last_val.items()})
    bar.close()
    if rank == 0 and step >= cfg.steps:
        save_pretrained(run / "model", ema, task.model_type, task.model_config(),
                        extra={"trained_steps": step, "weights": "ema",
                               "train_seconds": round(spent + time.perf_counter() - clock, 1), **lineage})
    if world > 1:
        dist.barrier()
    return run / "model"


def _update_ema(ema: dict, model: nn.Module, decay: float, frozen: set = frozenset()) -> None:
    """EMA of the weights; `frozen` ones are left as they are (averaging would only add rounding)."""
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k in frozen:
                continue
            if v.is_floating_point():
                ema[k].mul_(decay).add_(v.float(), alpha=1 - decay)
            else:
                ema[k].copy_(v)


def _validate_ema(task: Task, model: nn.Module, ema: dict, device: torch.device) -> dict:
    live = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(ema)
    model.eval()
    try:
        with torch.no_grad():
            return task.validate(model, device)
    finally:
        model.load_state_dict(live)
        model.train()


def _mean_over_ranks(value: float, device: torch.device) -> float:
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor) / dist.get_world_size()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step", dynamic_ncols=True)
