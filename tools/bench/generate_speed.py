"""Benchmark: the main command's time (`gen3d generate` on a shipped example, default flags, warm) and
the occupancy query's block size, against one pass per 262,144-point chunk (the earlier behaviour).

    python tools/bench/generate_speed.py [--runs 4] [--image data/examples/mug.png] [--json]

Reported with the machine's state, which varies about 2x on the shared 2-core machines: a 1024^2
float32 matrix product's GFLOP/s and `python -c "import torch"`'s wall time. The query part decodes
4 random latents with the bundled VAE and queries them on the 65^3 coarse lattice (4 x 274,625
points, as one 4-sample generation does) with several rows per MLP pass; the values are compared
with the one-pass ones. The command part runs the README's main command `--runs` times after one
warm-up run and reports each run's wall time and the generation's own `seconds` (its --json).
Target (issue 7): <= 10 s for a warm run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import gen3d.stages.shape_vae.model as vae_module  # noqa: E402
from gen3d.stages.shape_vae.mesh import COARSE  # noqa: E402

ONE_PASS = 262_144  # points per query call in the coarse lattice loop before blocks (DecodedLatents.chunk)


def gflops() -> float:
    a = torch.randn(1024, 1024)
    a @ a
    start = time.perf_counter()
    for _ in range(20):
        a @ a
    return 20 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9


def query_rows_table(repeats: int = 3) -> list[dict]:
    vae = vae_module.load_vae()
    torch.manual_seed(0)
    with torch.no_grad():
        planes = vae.decode(torch.randn(4, *vae.config.latent_shape))  # (4, 3, C, R, R)
    axis = torch.arange(COARSE + 1).float() * (2.0 / COARSE) - 1.0
    nodes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)  # (L^3, 3)
    points = nodes[None].expand(4, -1, -1)  # (4, L^3, 3)
    saved, rows_out, reference = vae_module.QUERY_ROWS, [], None
    try:
        for rows in (4 * ONE_PASS, 8_192, vae_module.QUERY_ROWS, 131_072):
            vae_module.QUERY_ROWS = rows
            times = []
            with torch.no_grad():
                for _ in range(repeats):
                    start = time.perf_counter()
                    logits = torch.cat([vae.query(planes, points[:, lo: lo + ONE_PASS])
                                        for lo in range(0, points.shape[1], ONE_PASS)], 1)  # (4, L^3)
                    times.append(time.perf_counter() - start)
            reference = logits if reference is None else reference
            rows_out.append({"rows_per_pass": rows, "one_pass": rows == 4 * ONE_PASS, "default": rows == saved,
                             "seconds": min(times), "max_abs_diff": float((logits - reference).abs().max())})
    finally:
        vae_module.QUERY_ROWS = saved
    for row in rows_out:
        row["speedup"] = rows_out[0]["seconds"] / row["seconds"]
    return rows_out


def command_times(image: Path, runs: int) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):
            start = time.perf_counter()
            done = subprocess.run(["gen3d", "generate", str(image), "-o", str(Path(tmp) / "out.glb"), "--json"],
                                  capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            if i:  # the first run warms the file cache
                seconds = json.loads(done.stdout)["results"][0]["seconds"]
                out.append({"wall_seconds": wall, "generation_seconds": seconds})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--image", type=Path, default=REPO / "data" / "examples" / "mug.png")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    import_seconds = time.perf_counter() - start
    machine = {"arch": platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%d %H:%M"), "gflops_1024": round(gflops(), 1),
               "import_torch_seconds": round(import_seconds, 2)}
    report = {"machine": machine, "query_rows": query_rows_table(), "command": command_times(args.image, args.runs)}
    if args.json:
        print(json.dumps(report))
        return
    print(f"# {machine['arch']}, {machine['cores']} cores, torch {machine['torch']}, {machine['date']}: "
          f"{machine['gflops_1024']} GFLOP/s (1024^2 matmul), `import torch` {machine['import_torch_seconds']} s")
    print("\n| rows per MLP pass | query s (4 x 65^3 points) | speed-up vs one pass | max abs diff |")
    print("|---|---|---|---|")
    for row in report["query_rows"]:
        label = f"{row['rows_per_pass']:,}" + (" (one pass, before)" if row["one_pass"] else "") + (
            " (default)" if row["default"] else "")
        print(f"| {label} | {row['seconds']:.3f} | {row['speedup']:.2f}x | {row['max_abs_diff']:.1e} |")
    print(f"\n| run | `gen3d generate {args.image.name} -o out.glb` wall s | generation s |")
    print("|---|---|---|")
    for i, row in enumerate(report["command"], 1):
        print(f"| {i} | {row['wall_seconds']:.2f} | {row['generation_seconds']:.2f} |")


if __name__ == "__main__":
    main()
