"""How far two `tools/bench/samplers.py --json` runs on different x_T seeds agree, row by row.

    python tools/bench/sampler_stability.py RUN_A.jsonl RUN_B.jsonl [--tolerance 0.1]

Prints, for RMSE, median error, diffusers' figures and the gen3d/diffusers ratio, the share of
common rows (schedule, sampler, NFE) whose values agree within the tolerance (|a / b - 1|); the
same split by whether both runs chose the same spacing, by the share of flipped samples and by
the rows' standard errors (where the runs report them); then every row whose RMSE disagrees.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def load(path: Path) -> dict[tuple, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return {(r["schedule"], r["sampler"], r["nfe"]): r for r in rows}


def ratio(row: dict) -> float | None:
    peer = row.get("peer_rmse")
    return row["rmse"] / peer if peer and math.isfinite(peer) else None


def share_within(pairs: list[tuple[float, float]], tolerance: float) -> str:
    if not pairs:
        return "—"
    inside = sum(abs(a / b - 1) <= tolerance for a, b in pairs)
    return f"{inside} of {len(pairs)} ({inside / len(pairs):.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.1)
    args = parser.parse_args()
    a, b = load(args.run_a), load(args.run_b)
    keys = sorted(set(a) & set(b))
    tol = args.tolerance

    def pairs(of, rows=keys):
        values = [(of(a[k]), of(b[k])) for k in rows]
        return [(x, y) for x, y in values if x is not None and y is not None and math.isfinite(x) and y > 0]

    same = [k for k in keys if a[k]["spacing"] == b[k]["spacing"]]
    print(f"{len(keys)} common rows; agreement within {tol:.0%}:")
    print(f"| figure | all rows | same spacing ({len(same)}) |\n|---|---|---|")
    for name, of in (("RMSE", lambda r: r["rmse"]), ("median", lambda r: r["median"]),
                     ("diffusers RMSE", lambda r: r.get("peer_rmse")), ("ratio gen3d/diffusers", ratio)):
        print(f"| {name} | {share_within(pairs(of), tol)} | {share_within(pairs(of, same), tol)} |")
    print("\nRMSE agreement by share of flipped samples (same spacing):")
    for low, high in ((0.0, 0.001), (0.001, 0.005), (0.005, 1.01)):
        rows = [k for k in same if low <= max(a[k]["flips"], b[k]["flips"]) < high]
        print(f"  flips in [{low}, {high}): {share_within(pairs(lambda r: r['rmse'], rows), tol)}")
    with_se = [k for k in keys if a[k].get("rmse_se") is not None and b[k].get("rmse_se") is not None]
    if with_se:
        print("\nRMSE agreement by relative standard error (the larger of the two runs'):")
        for low, high in ((0.0, 0.01), (0.01, 0.03), (0.03, 0.05), (0.05, float("inf"))):
            rows = [k for k in with_se if low <= max(r[k]["rmse_se"] / r[k]["rmse"] for r in (a, b)) < high]
            print(f"  s.e. in [{low:.0%}, {high:.0%}): {share_within(pairs(lambda r: r['rmse'], rows), tol)}")
        z = [abs(a[k]["rmse"] - b[k]["rmse"]) / math.hypot(a[k]["rmse_se"], b[k]["rmse_se"]) for k in with_se
             if a[k]["rmse_se"] + b[k]["rmse_se"] > 0]
        print(f"  differences within 2 combined s.e.: {sum(v <= 2 for v in z) / len(z):.0%} of {len(z)} "
              "(about 95% if the standard errors are right)")
    print("\nRows whose RMSE disagrees:")
    for k in keys:
        if abs(a[k]["rmse"] / b[k]["rmse"] - 1) > tol:
            print(f"  {k}: spacing {a[k]['spacing']} / {b[k]['spacing']}, "
                  f"RMSE {a[k]['rmse']:.4f} / {b[k]['rmse']:.4f}, flips {a[k]['flips']:.4f} / {b[k]['flips']:.4f}")


if __name__ == "__main__":
    main()
