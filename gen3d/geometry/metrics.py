"""Shape metrics exactly as CONVENTIONS defines them; the one implementation every eval uses.

Chamfer-L1 and F-score use *point-to-triangle* distances from seeded area-weighted samples of
one surface to the other surface; volume IoU uses seeded uniform points in [-1, 1]^3 with
inside decided by generalized winding number >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen3d.geometry.fields import occupancy, unsigned_distance
from gen3d.geometry.sampling import SurfaceSamples, sample_surface
from gen3d.types import Mesh

NUM_SAMPLES = 100_000


@dataclass(frozen=True)
class SurfaceComparison:
    """Distances from samples of A to surface B and of B to surface A, with normal agreement."""

    dist_a_to_b: np.ndarray  # (N,)
    dist_b_to_a: np.ndarray  # (N,)
    cos_a: np.ndarray  # (N,) |cos| between A's normal and B's normal at the closest point
    cos_b: np.ndarray  # (N,)

    @property
    def chamfer_l1(self) -> float:
        """1/2 (mean d(a, B) + mean d(b, A))."""
        return 0.5 * (float(self.dist_a_to_b.mean()) + float(self.dist_b_to_a.mean()))

    def fscore(self, tau: float) -> float:
        """Harmonic mean of precision (A-samples within tau of B) and recall (B-samples within tau of A)."""
        precision = float((self.dist_a_to_b <= tau).mean())
        recall = float((self.dist_b_to_a <= tau).mean())
        return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)

    @property
    def normal_consistency(self) -> float:
        """Mean |cos| between the normal at each sample and at its closest point on the other surface."""
        return 0.5 * (float(self.cos_a.mean()) + float(self.cos_b.mean()))


def _one_way(samples: SurfaceSamples, target: Mesh) -> tuple[np.ndarray, np.ndarray]:
    distance, closest_face = unsigned_distance(target, samples.points)
    target_normals = target.face_normals()[closest_face]  # (N, 3)
    cos = np.abs(np.einsum("nd,nd->n", samples.normals, target_normals))
    return distance, cos


def compare_surfaces(a: Mesh, b: Mesh, num_samples: int = NUM_SAMPLES, seed: int = 0) -> SurfaceComparison:
    """Sample both surfaces (seeded) and measure point-to-triangle distances both ways."""
    samples_a = sample_surface(a, num_samples, seed=seed)
    samples_b = sample_surface(b, num_samples, seed=seed + 1)
    dist_ab, cos_a = _one_way(samples_a, b)
    dist_ba, cos_b = _one_way(samples_b, a)
    return SurfaceComparison(dist_ab, dist_ba, cos_a, cos_b)


def chamfer_l1(a: Mesh, b: Mesh, num_samples: int = NUM_SAMPLES, seed: int = 0) -> float:
    """Point-to-triangle Chamfer-L1 (CONVENTIONS)."""
    return compare_surfaces(a, b, num_samples, seed).chamfer_l1


def fscore(a: Mesh, b: Mesh, tau: float, num_samples: int = NUM_SAMPLES, seed: int = 0) -> float:
    """F-score@tau from point-to-triangle distances (CONVENTIONS)."""
    return compare_surfaces(a, b, num_samples, seed).fscore(tau)


def normal_consistency(a: Mesh, b: Mesh, num_samples: int = NUM_SAMPLES, seed: int = 0) -> float:
    """Mean |cos| of normals at samples and at their closest points (CONVENTIONS)."""
    return compare_surfaces(a, b, num_samples, seed).normal_consistency


def volume_iou(a: Mesh, b: Mesh, num_points: int = NUM_SAMPLES, seed: int = 0) -> float:
    """IoU of the winding-number interiors on seeded uniform points in [-1, 1]^3 (CONVENTIONS)."""
    points = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(num_points, 3))  # (N, 3)
    inside_a, inside_b = occupancy(a, points), occupancy(b, points)
    union = int((inside_a | inside_b).sum())
    return 1.0 if union == 0 else int((inside_a & inside_b).sum()) / union
