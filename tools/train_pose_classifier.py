"""Train the pose classifier shipped in gen3d/weights/pose (our own recipe, CPU, ~1-2 minutes).

    python tools/train_pose_classifier.py [--per-family 40] [--epochs 400] [--out gen3d/weights/pose]

Data: procedural shapes of every family from the *train* seed range (canonical by construction).
For each shape, all 24 cube rotations T of it are candidates; T is a positive when it maps the
shape onto itself (a symmetry, by one-sided Chamfer), so symmetric shapes have several. Loss:
-log of the softmax mass on the positives, per shape. Two samplings per shape (the second with
a small random tilt, for robustness to imperfect base frames); the epoch kept is the best on the
last fifth of the train seeds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gen3d.geometry.procedural import FAMILIES, generate_shape, shape_seeds  # noqa: E402
from gen3d.geometry.sampling import sample_surface  # noqa: E402
from gen3d.stages.curate.pose import ROTATIONS, WEIGHTS, PoseMLP, orientation_features, symmetries  # noqa: E402


def shape_examples(job: tuple[str, int, int]):
    """[(features (24, F), positives (24,) bool)] for one canonical shape (tilts samplings)."""
    from scipy.spatial.transform import Rotation

    family, seed, tilts = job
    rng = np.random.default_rng(seed)
    mesh, _ = generate_shape(family, seed)
    dense = sample_surface(mesh, 16384, seed).points
    positives = symmetries(dense - dense.mean(0))
    out = []
    for t in range(tilts):
        surface = sample_surface(mesh, 4096, seed + 7919 * (t + 1))
        points, normals = surface.points - surface.points.mean(0), surface.normals
        if t > 0:
            tilt = Rotation.from_rotvec(rng.normal(size=3) * np.deg2rad(3.0)).as_matrix()
            points, normals = points @ tilt.T, normals @ tilt.T
        features = orientation_features(np.einsum("kij,nj->kni", ROTATIONS, points),
                                        np.einsum("kij,nj->kni", ROTATIONS, normals))
        out.append((features, positives))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--out", default=str(WEIGHTS))
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.time()
    jobs = [(family, seed, 2) for family in FAMILIES for seed in shape_seeds(args.per_family, 0, "train")]
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        shapes = pool.map(shape_examples, jobs, chunksize=4)
    # the last fifth of each family's seeds picks the epoch (early stopping); never the val range
    held = np.array([i % args.per_family >= 0.8 * args.per_family for i in range(len(jobs))])
    fit = [e for s, h in zip(shapes, held) if not h for e in s]
    check = [e for s, h in zip(shapes, held) if h for e in s[:1]]
    stack = lambda examples: (torch.tensor(np.stack([f for f, _ in examples]), dtype=torch.float32),  # noqa: E731
                              torch.tensor(np.stack([p for _, p in examples])))
    (x, mask), (x_check, mask_check) = stack(fit), stack(check)
    print(f"{len(x)} + {len(x_check)} examples in {time.time() - start:.0f} s")
    model = PoseMLP()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-3)
    best = (-1.0, None, 0)
    for epoch in range(args.epochs):
        model.train()
        logits = model(x.reshape(-1, x.shape[-1])).reshape(mask.shape)  # (S, 24)
        log_probs = torch.log_softmax(logits, dim=1)
        loss = -torch.logsumexp(log_probs.masked_fill(~mask, -torch.inf), dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            chosen = model(x_check.reshape(-1, x.shape[-1])).reshape(mask_check.shape).argmax(1)
        accuracy = float(mask_check[torch.arange(len(mask_check)), chosen].float().mean())
        if accuracy > best[0]:
            best = (accuracy, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
        if epoch % 50 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch}: loss {loss.item():.4f}, held-out train-seed accuracy {accuracy:.3f}")
    model.load_state_dict(best[1])
    print(f"kept epoch {best[2]} (held-out accuracy {best[0]:.3f})")
    model.save(args.out, {"trained_on": f"procedural train seeds, {args.per_family} per family (last fifth held "
                                        f"out for early stopping), 2 samplings", "epochs": args.epochs,
                          "kept_epoch": best[2], "held_out_accuracy": best[0]})
    print(f"saved {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
