"""Ablation: binary vs semi-continuous occupancy labels (Direct3D's semi-continuous surface sampling)
on shapes with thin parts, the same model and budget for every arm.

    python tools/ablation_labels.py [--root runs/tiny] [--stages train eval] [--threads 1]

Needs the prepared data of tools/recipe_tiny.py (stage `data`). Each arm trains
configs/vae/ablation_thin.yaml with its label band (0 = binary, 1/512, 1/128, 1/64) into
ROOT/ablation/<arm>, resumably, on the thin-part families (table, chair, shelf, lamp; train seeds);
then every arm's EMA model (exported as fp16) reconstructs the val-seed meshes of those families and is scored with
`gen3d eval vae` (volume IoU, Chamfer-L1, F-score@0.02). Prints a markdown table; JSON in
ROOT/ablation/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ARMS = {"binary": 0.0, "s=1/512": 1 / 512, "s=1/128": 1 / 128, "s=1/64": 1 / 64}
THIN_FAMILIES = ("table", "chair", "shelf", "lamp")


def arm_dir(root: Path, arm: str) -> Path:
    return root / "ablation" / arm.replace("/", "_").replace("=", "")


def gen3d(*args: str) -> None:
    command = [sys.executable, "-m", "gen3d.cli", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def train_arms(root: Path, threads: int) -> None:
    base = yaml.safe_load((REPO / "configs" / "vae" / "ablation_thin.yaml").read_text())
    for arm, band in ARMS.items():
        folder = arm_dir(root, arm)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder.parent / f"{folder.name}.yaml"
        config.write_text(yaml.safe_dump({**base, "data": {**base["data"], "label_band": band}}))
        start = time.perf_counter()
        gen3d("--threads", str(threads), "-q", "train", "vae", "--config", str(config),
              "--data", str(root / "prepared" / "train"), "--val-data", str(root / "prepared" / "val"),
              "--out", str(folder))
        print(f"{arm}: {time.perf_counter() - start:.0f} s", flush=True)


def evaluate_arms(root: Path, threads: int) -> list[dict]:
    meshes = sorted(str(p) for family in THIN_FAMILIES
                    for p in (root / "sources" / "val" / "procedural").glob(f"{family}_*.obj"))
    rows = []
    for arm, band in ARMS.items():
        folder = arm_dir(root, arm)
        out = folder / "eval.json"
        if not out.is_file():  # scored in fp16, like the bundled model
            gen3d("-q", "train", "export", str(folder), "--out", str(folder / "model_fp16"), "--fp16")
            gen3d("--threads", str(threads), "-q", "eval", "vae", "--checkpoint", str(folder / "model_fp16"),
                  "--resolution", "128", "--meshes", *meshes, "--output", str(out))
        result = json.loads(out.read_text())
        steps = json.loads((folder / "model" / "config.json").read_text())["trained_steps"]
        rows.append({"arm": arm, "band": band, "steps": steps, "meshes": len(result["meshes"]), **result["mean"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "tiny")
    parser.add_argument("--stages", nargs="+", choices=["train", "eval"], default=["train", "eval"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if "train" in args.stages:
        train_arms(args.root, args.threads)
    if "eval" not in args.stages:
        return
    rows = evaluate_arms(args.root, args.threads)
    (args.root / "ablation" / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"# label ablation, thin-part val shapes, {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| labels | steps | val meshes | IoU | Chamfer-L1 | F@0.02 |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['steps']} | {r['meshes']} | {r['iou']:.3f} | {r['chamfer_l1']:.4f} | "
              f"{r['fscore']:.3f} |")


if __name__ == "__main__":
    main()
