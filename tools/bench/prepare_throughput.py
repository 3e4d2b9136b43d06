"""Benchmark: data-preparation throughput for workers x threads on procedural assets.

    python tools/bench/prepare_throughput.py [--assets 100] [--layouts 1x1 1x2 2x1] [--json]

Each layout prepares the same `--assets` procedural shapes (all families, val seeds, OBJ) from
scratch with the default output config (81,920 surface points, 60,000 SDF queries, 4 views at
256 px, classifier pose), timing the whole job including worker start-up. The target on a
2-core machine: 2 workers x 1 thread >= 1.8x the 1 x 1 rate and >= the 1 worker x 2 threads rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.procedural import FAMILIES, write_procedural  # noqa: E402
from gen3d.stages.curate.config import PrepareConfig  # noqa: E402
from gen3d.stages.curate.job import prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=100)
    parser.add_argument("--layouts", nargs="+", default=["1x1", "1x2", "2x1"], help="WORKERSxTHREADS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        write_procedural(src, list(FAMILIES), args.assets, seed=0, split="val")
        for layout in args.layouts:
            workers, threads = (int(v) for v in layout.split("x"))
            start = time.perf_counter()
            summary = prepare(src, Path(tmp) / layout, PrepareConfig(), workers=workers, threads=threads)
            seconds = time.perf_counter() - start
            results.append({"layout": layout, "workers": workers, "threads": threads, "assets": summary["inputs"],
                            "accepted": summary["accepted"], "seconds": round(seconds, 2),
                            "assets_per_second": round(summary["inputs"] / seconds, 4)})
            if args.json:
                print(json.dumps(results[-1]), flush=True)
    if args.json:
        return
    base = results[0]["assets_per_second"]
    print(f"# prepare throughput, {args.assets} procedural assets, {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| workers x threads | seconds | assets/s | vs first |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['layout']} | {r['seconds']:.1f} | {r['assets_per_second']:.3f} | "
              f"{r['assets_per_second'] / base:.2f}x |")


if __name__ == "__main__":
    main()
