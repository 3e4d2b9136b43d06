"""Train several DiT configs side by side on one GPU within a wall-clock budget, from one training pack.

    python tools/train_dit_timed.py --pack PACK.npz --budget 420 --out OUT \
        NAME=CONFIG.yaml[@INIT_MODEL_DIR] [NAME=...]

The runs share the machine, so each one's speed is measured with the others running: all of them
train 60 calibration steps at once, then each config's `train.steps` is set to what fits the budget
at its measured speed (a multiple of 100; the cosine schedule follows it) and written to
OUT/NAME/config.yaml, and all of them train at once (`gen3d train dit --data PACK --device cuda`).
A run still going at budget + 25% is stopped; every run is exported from its last checkpoint
(`gen3d train export --fp16`) into OUT/NAME/model (a weights file over 15 MiB is split in parts,
which `--join` puts back together) with its metrics.jsonl and log. The config written beside each
model, with the steps it got, reproduces the run anywhere (`gen3d train dit --config ...`).

    python tools/train_dit_timed.py --join OUT/NAME/model
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

CALIBRATION_STEPS = 60
PART_BYTES = 15 * 2**20  # files that come back from the GPU machine are capped at 16 MiB each


def gen3d_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gen3d.cli", *args]


def launch(name: str, config: Path, pack: Path, run: Path, init: str | None, log: Path, threads: int,
           device: str, steps: int | None = None) -> subprocess.Popen:
    command = gen3d_command("--threads", str(threads), "--device", device, "train", "dit", "--config", str(config),
                            "--data", str(pack), "--out", str(run), "-q")
    if init:
        command += ["--init-from", init]
    if steps is not None:
        command += ["--steps", str(steps)]
    print(f"[{name}] {' '.join(command)}", flush=True)
    return subprocess.Popen(command, stdout=log.open("a"), stderr=subprocess.STDOUT)


def seconds_per_step(run: Path) -> float:
    """From the run's metrics: the time between its first and last logged steps (start-up excluded)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [(r["step"], r["train_seconds"]) for r in rows if "train_seconds" in r]
    (s0, t0), (s1, t1) = timed[0], timed[-1]
    return (t1 - t0) / (s1 - s0)


def split_weights(model: Path) -> None:
    """model.safetensors over PART_BYTES -> model.safetensors.partN files (each a valid safetensors)."""
    from safetensors.torch import load_file, save_file

    path = model / "model.safetensors"
    if path.stat().st_size <= PART_BYTES:
        return
    state, parts, part, size = load_file(str(path)), [], {}, 0
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if part and size + nbytes > PART_BYTES:
            parts.append(part)
            part, size = {}, 0
        part[key], size = value, size + nbytes
    parts.append(part)
    for index, chunk in enumerate(parts):
        save_file(chunk, str(model / f"model.safetensors.part{index}"))
    path.unlink()


def join_weights(model: Path) -> None:
    from safetensors.torch import load_file, save_file

    parts = sorted(model.glob("model.safetensors.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    state = {}
    for part in parts:
        state.update(load_file(str(part)))
    save_file(state, str(model / "model.safetensors"), metadata={"format": "pt"})
    for part in parts:
        part.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="NAME=CONFIG.yaml[@INIT_MODEL_DIR]")
    parser.add_argument("--pack", type=Path)
    parser.add_argument("--budget", type=float, default=420.0, help="training seconds per run (after calibration)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=4, help="CPU threads per run")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run")
    parser.add_argument("--join", type=Path, default=None, help="join a split model folder's weights and exit")
    args = parser.parse_args()
    if args.join:
        join_weights(args.join)
        return
    runs = {}
    for spec in args.runs:
        name, rest = spec.split("=", 1)
        config, _, init = rest.partition("@")
        runs[name] = (Path(config), init or None)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path("/tmp/train_dit_timed")
    shutil.rmtree(scratch, ignore_errors=True)

    start = time.perf_counter()
    calibration = {name: launch(name, config, args.pack, scratch / f"{name}-calibration", init,
                                args.out / f"{name}.log", args.threads, args.device, CALIBRATION_STEPS)
                   for name, (config, init) in runs.items()}
    failed = [name for name, process in calibration.items() if process.wait() != 0]
    if failed:
        sys.exit(f"calibration failed for {', '.join(failed)} (logs in {args.out})")
    print(f"calibrated in {time.perf_counter() - start:.0f} s", flush=True)

    training, plan = {}, {}
    for name, (config, init) in runs.items():
        per_step = seconds_per_step(scratch / f"{name}-calibration")
        steps = max(100, int(args.budget / per_step) // 100 * 100)
        cfg = yaml.safe_load(config.read_text())
        cfg["train"]["steps"] = steps
        cfg["train"]["checkpoint_every"] = max(100, steps // 10)
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        (folder / "config.yaml").write_text(f"# {config.name} with the steps that fit {args.budget:.0f} s at "
                                            f"{per_step * 1000:.1f} ms/step (tools/train_dit_timed.py)\n"
                                            + yaml.safe_dump(cfg, sort_keys=False))
        plan[name] = {"seconds_per_step": per_step, "steps": steps, "init": init}
        training[name] = launch(name, folder / "config.yaml", args.pack, scratch / name, init,
                                args.out / f"{name}.log", args.threads, args.device)
    print(json.dumps(plan), flush=True)
    deadline = time.perf_counter() + args.budget * 1.25
    for name, process in training.items():
        try:
            process.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            process.kill()
            print(f"[{name}] stopped at the deadline; exporting its last checkpoint", flush=True)
    for name in runs:
        run, folder = scratch / name, args.out / name
        subprocess.run(gen3d_command("train", "export", str(run), "--out", str(folder / "model"), "--fp16", "-q"),
                       check=False)
        if (run / "metrics.jsonl").is_file():
            shutil.copy(run / "metrics.jsonl", folder / "metrics.jsonl")
        if (folder / "model" / "model.safetensors").is_file():
            split_weights(folder / "model")
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
