"""Train the pose classifier shipped in gen3d/weights/pose (our own recipe, CPU, ~1-2 minutes).

    python tools/train_pose_classifier.py [--per-family 40] [--epochs 400] [--out gen3d/weights/pose]

Data: procedural shapes of every family from the *train* seed range (canonical by construction).
For each shape, all 24 cube rotations T of it are candidates; T is a positive when it maps the
shape onto itself (a symmetry, by one-sided Chamfer), so symmetric shapes have several. Loss:
-log of the softmax mass on the positives, per shape. Two samplings per shape, each with a small
random tilt, for robustness to imperfect base frames.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gen3d.geometry.procedural import FAMILIES, generate_shape, shape_seeds  # noqa: E402
from gen3d.geometry.sampling import sample_surface  # noqa: E402
from gen3d.stages.curate.pose import ROTATIONS, WEIGHTS, PoseMLP, density_features, symmetries  # noqa: E402


def shape_examples(family: str, seed: int, tilts: int, rng: np.random.Generator):
    """[(features (24, F), positives (24,) bool)] for one canonical shape."""
    from scipy.spatial.transform import Rotation

    mesh, _ = generate_shape(family, seed)
    dense = sample_surface(mesh, 16384, seed).points
    positives = symmetries(dense - dense.mean(0))
    out = []
    for t in range(tilts):
        points = sample_surface(mesh, 4096, seed + 7919 * (t + 1)).points
        points = points - points.mean(0)
        if t > 0:
            tilt = Rotation.from_rotvec(rng.normal(size=3) * np.deg2rad(3.0)).as_matrix()
            points = points @ tilt.T
        candidates = np.einsum("kij,nj->kni", ROTATIONS, points)
        out.append((density_features(candidates), positives))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--out", default=str(WEIGHTS))
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    start = time.time()
    features, positives = [], []
    for family in FAMILIES:
        for seed in shape_seeds(args.per_family, 0, "train"):
            for f, p in shape_examples(family, seed, 2, rng):
                features.append(f)
                positives.append(p)
    x = torch.tensor(np.stack(features), dtype=torch.float32)  # (S, 24, F)
    mask = torch.tensor(np.stack(positives))  # (S, 24)
    print(f"{len(x)} examples in {time.time() - start:.0f} s; mean positives {mask.float().sum(1).mean():.2f}")
    model = PoseMLP()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    for epoch in range(args.epochs):
        logits = model(x.reshape(-1, x.shape[-1])).reshape(mask.shape)  # (S, 24)
        log_probs = torch.log_softmax(logits, dim=1)
        loss = -torch.logsumexp(log_probs.masked_fill(~mask, -torch.inf), dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if epoch % 50 == 0 or epoch == args.epochs - 1:
            accuracy = mask[torch.arange(len(mask)), logits.argmax(1)].float().mean()
            print(f"epoch {epoch}: loss {loss.item():.4f}, train accuracy {accuracy:.3f}")
    model.save(args.out, {"trained_on": f"procedural train seeds, {args.per_family} per family, 2 samplings",
                          "epochs": args.epochs})
    print(f"saved {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
