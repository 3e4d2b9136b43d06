"""Pose alignment to the canonical frame (+Y up, front +Z), as DIRECT-3D aligns wild assets.

1. Base frame: the input as it is when it is already axis-aligned (so such inputs are not
   disturbed), else its principal axes, as they are and refined so that surface normals line up
   with the coordinate axes (man-made shapes are "Manhattan"; the scorer picks between the two).
2. Among the 24 rotations of the cube group applied to the base frame, a scorer picks the
   canonical one: `ClassifierScorer` (a small MLP on an occupancy-density grid, trained on
   procedural shapes by tools/train_pose_classifier.py, shipped in gen3d/weights/pose) or
   `PriorScorer` (support plane, low centre of mass, left-right mirror symmetry). A DIRECT-3D
   style scorer (the rotation minimising a trained shape model's loss) plugs in the same way.

`rotation` R maps loaded coordinates to canonical ones: canonical = R @ loaded (CONVENTIONS).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.optimize import minimize
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from gen3d.geometry.sampling import sample_surface
from gen3d.types import Mesh

GRID = 6  # coarse density grid of the classifier's features
SLABS = 8  # slabs per axis of the profiles
FEATURES = GRID**3 + 3 * SLABS * 7 + 4
WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "pose"


def cube_rotations() -> np.ndarray:
    """(24, 3, 3) the proper rotations with entries in {-1, 0, 1} (identity first)."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[range(3), perm] = signs
            if np.linalg.det(matrix) > 0:
                found.append(matrix)
    found.sort(key=lambda m: (not np.allclose(m, np.eye(3)),))
    return np.stack(found)


ROTATIONS = cube_rotations()


class PoseScorer(Protocol):
    """Scores candidate orientations of one shape: higher = more likely canonical."""

    def score(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """points, normals: (C, N, 3) candidates (centred, longest side ~1.9) -> (C,) scores."""
        ...


def _boxed(points: np.ndarray) -> np.ndarray:
    """(..., N, 3) centred at the bounding-box centre and scaled to longest side 1.9, per candidate."""
    lo, hi = points.min(-2, keepdims=True), points.max(-2, keepdims=True)
    return (points - (lo + hi) / 2) * (1.9 / np.maximum((hi - lo).max(-1, keepdims=True), 1e-12))


def _slab_means(coordinate: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(C, SLABS, K): per candidate, the mean of each of K values over the points in each of SLABS
    equal slabs of `coordinate` (in [-0.95, 0.95]); empty slabs give 0."""
    slab = np.clip(((coordinate + 0.95) / 1.9 * SLABS).astype(np.int64), 0, SLABS - 1)  # (C, N)
    one_hot = np.eye(SLABS)[slab]  # (C, N, SLABS)
    counts = one_hot.sum(1)  # (C, SLABS)
    sums = np.einsum("cns,cnk->csk", one_hot, values)
    return sums / np.maximum(counts, 1)[..., None]


def orientation_features(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(C, FEATURES) per candidate orientation: a coarse GRID^3 surface density, and profiles
    along each axis (SLABS slabs: share of points, mean position and spread in the other axes,
    shares of normals facing along the slab axis), extents and the share near the bottom."""
    boxed = _boxed(points)  # (C, N, 3)
    c, n, _ = boxed.shape
    cells = np.clip(((boxed + 1) / 2 * GRID).astype(np.int64), 0, GRID - 1)  # (C, N, 3)
    flat = (cells[..., 0] * GRID + cells[..., 1]) * GRID + cells[..., 2]  # (C, N)
    density = np.zeros((c, GRID**3))
    np.add.at(density, (np.repeat(np.arange(c), n), flat.ravel()), 1.0 / n)
    parts = [density]
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        values = np.concatenate([np.ones((c, n, 1)), boxed[..., others], np.abs(boxed[..., others]),
                                 (normals[..., axis:axis + 1] > 0.7), (normals[..., axis:axis + 1] < -0.7)], axis=2)
        profile = _slab_means(boxed[..., axis], values)  # (C, SLABS, 7)
        share = np.stack([np.bincount(np.clip(((boxed[k, :, axis] + 0.95) / 1.9 * SLABS).astype(int), 0,
                                              SLABS - 1), minlength=SLABS) / n for k in range(c)])
        profile[..., 0] = share
        parts.append(profile.reshape(c, -1))
    extents = np.ptp(boxed, axis=1) / 1.9  # (C, 3)
    low = (boxed[..., 1] < boxed[..., 1].min(1, keepdims=True) + 0.19).mean(1, keepdims=True)  # (C, 1)
    return np.concatenate(parts + [extents, low], axis=1)


class PoseMLP(torch.nn.Module):
    """Logit that a candidate orientation is canonical, from orientation_features."""

    def __init__(self, inputs: int = FEATURES, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(hidden, 1))
        self.config = {"inputs": inputs, "hidden": hidden, "grid": GRID, "slabs": SLABS}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)  # (C,)

    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        config = {"format_version": 1, "model": "PoseMLP", **self.config, **(extra or {})}
        (folder / "config.json").write_text(json.dumps(config, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> PoseMLP:
        folder = Path(folder)
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"no pose classifier in {folder} (train one with tools/train_pose_classifier.py)")
        config = json.loads((folder / "config.json").read_text())
        if config.get("model") != "PoseMLP" or (config.get("grid"), config.get("slabs")) != (GRID, SLABS):
            raise ValueError(f"{folder}: config is for {config.get('model')} grid {config.get('grid')} slabs "
                             f"{config.get('slabs')}, expected PoseMLP grid {GRID} slabs {SLABS}")
        model = cls(config["inputs"], config["hidden"])
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model.eval()


class ClassifierScorer:
    """The bundled (or a given) PoseMLP."""

    def __init__(self, folder: str | Path = WEIGHTS):
        self.model = PoseMLP.load(folder)

    def score(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            features = orientation_features(points, normals)
            return self.model(torch.as_tensor(features, dtype=torch.float32)).double().numpy()


class PriorScorer:
    """Geometric priors: a flat support at the bottom, a low centre of mass, and mirror symmetry
    across the YZ plane (x -> -x), as objects stand and face forward."""

    def score(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        boxed = _boxed(points)  # (C, N, 3)
        y = boxed[..., 1]
        bottom = y < y.min(1, keepdims=True) + 0.05
        support = (bottom & (normals[..., 1] < -0.9)).mean(1)  # downward faces at the base
        low_mass = -y.mean(1) / 1.9
        scores = []
        for k in range(len(boxed)):
            mirrored = boxed[k] * np.array([-1.0, 1.0, 1.0])
            asymmetry = cKDTree(boxed[k]).query(mirrored[::4])[0].mean()
            scores.append(-asymmetry)
        return 4.0 * support + 2.0 * low_mass + 10.0 * np.array(scores)


SCORERS = {"classifier": ClassifierScorer, "priors": PriorScorer}


def axis_alignment(normals: np.ndarray, rotation: np.ndarray) -> float:
    """Mean of sum_i (R n)_i^4 over surface normals: 1 when every normal is along an axis."""
    rotated = normals @ rotation.T
    return float((rotated**4).sum(1).mean())


def base_frames(points: np.ndarray, normals: np.ndarray, aligned_deg: float = 10.0) -> list[tuple[str, np.ndarray]]:
    """The frames the 24 candidates are built on.

    Only the input frame when it is already axis-aligned (every principal axis that PCA
    determines within `aligned_deg` of a coordinate axis, or normals at least as axis-aligned as
    in the PCA frames); otherwise the principal axes and the principal axes refined to maximise
    axis_alignment (man-made shapes whose principal axes are tilted, e.g. a chair's backrest) —
    the scorer decides between them."""
    centred = points - points.mean(0)
    values, vectors = np.linalg.eigh(np.cov(centred.T))
    pca = vectors.T[::-1].copy()  # rows: principal axes, largest first
    if np.linalg.det(pca) < 0:
        pca[2] *= -1
    values = values[::-1]  # largest first, as the rows of pca
    gaps = np.abs(values[:, None] - values[None]) + np.eye(3) * values.max()
    separate = gaps.min(1) > 0.05 * values.max()  # (3,) axes PCA determines (not in a tied pair)
    distinct = bool(separate.all())
    angles = np.degrees(np.arccos(np.clip(np.abs(pca).max(1), -1, 1)))  # (3,) to the nearest coordinate axis
    near_axes = bool(separate.any() and (angles[separate] < aligned_deg).all())
    subset = normals[::4]
    objective = lambda v: -axis_alignment(subset, Rotation.from_rotvec(v).as_matrix() @ pca)  # noqa: E731
    result = minimize(objective, np.zeros(3), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7})
    refined = Rotation.from_rotvec(result.x).as_matrix() @ pca
    gain = axis_alignment(normals, refined) - axis_alignment(normals, pca)
    frames = [("pca", pca)] if distinct else []
    if gain > 0.02 or not distinct:
        frames.append(("pca_refined", refined))
    revolution = revolution_frame(centred, normals, pca)
    if revolution is not None:
        frames.append(("revolution", revolution))
        axis_angle = np.degrees(np.arccos(np.clip(np.abs(revolution[1]).max(), -1, 1)))
        return [("input", np.eye(3))] if axis_angle < aligned_deg else frames
    manhattan = axis_alignment(normals, np.eye(3))
    reachable = max(axis_alignment(normals, refined), axis_alignment(normals, pca))
    if near_axes or (manhattan > 0.6 and manhattan >= reachable - 0.01):
        return [("input", np.eye(3))]
    return frames


def revolution_frame(centred: np.ndarray, normals: np.ndarray, pca: np.ndarray,
                     max_residual: float = 0.05) -> np.ndarray | None:
    """A frame whose +Y is the axis of rotational symmetry through the centroid, when the surface
    has one: normals of a surface of revolution are coplanar with the axis, so a . (q x n) = 0 for
    every point q and normal n; the axis is the least eigenvector of sum (q x n)(q x n)^T. None when
    the residual (least / middle eigenvalue) exceeds `max_residual`."""
    moments = np.cross(centred, normals)  # (N, 3)
    values, vectors = np.linalg.eigh(moments.T @ moments)
    if values[1] <= 0 or values[0] / values[1] > max_residual:
        return None
    axis = vectors[:, 0]
    side = next((p for p in pca if abs(p @ axis) < 0.9), np.eye(3)[np.argmin(np.abs(axis))])
    side = side - (side @ axis) * axis  # the largest principal direction across the axis
    side /= np.linalg.norm(side)
    return np.stack([side, axis, np.cross(side, axis)])  # rows x, y, z: proper rotation


@dataclass
class PoseResult:
    rotation: np.ndarray  # (3, 3): canonical = rotation @ loaded
    confidence: float  # softmax probability of the chosen candidate among the 24
    base: str  # "input", "pca", "pca_refined" or "revolution"
    scores: np.ndarray  # (24,) of the chosen base frame


def align_pose(mesh: Mesh, scorer: PoseScorer, seed: int = 0, samples: int = 4096) -> PoseResult:
    """Choose the canonical rotation of `mesh` (see the module docstring)."""
    surface = sample_surface(mesh, samples, seed)
    points = surface.points - surface.points.mean(0)
    results = []
    for kind, base in base_frames(points, surface.normals):
        candidates = ROTATIONS @ base  # (24, 3, 3)
        scores = scorer.score(np.einsum("kij,nj->kni", candidates, points),
                              np.einsum("kij,nj->kni", candidates, surface.normals))
        best = int(np.argmax(scores))
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        results.append((float(scores[best]), PoseResult(candidates[best], float(probabilities[best]), kind, scores)))
    return max(results, key=lambda r: r[0])[1]


def symmetries(points: np.ndarray, tolerance: float = 0.03) -> np.ndarray:
    """(24,) bool: which cube rotations map the (centred, normalized) point set onto itself, by
    the mean nearest-neighbour distance (a one-sided Chamfer, from every 4th point) below `tolerance`."""
    tree = cKDTree(points)
    return np.array([tree.query(points[::4] @ r.T)[0].mean() < tolerance for r in ROTATIONS])
