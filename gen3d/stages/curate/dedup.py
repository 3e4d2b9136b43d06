"""Duplicate detection by a geometric fingerprint that survives re-export, vertex and face
re-ordering, translation, scale and rotation: the D2 shape distribution (Osada et al. 2002,
distances between random surface point pairs over the RMS radius) plus the normalized
eigenvalues of the surface's second moments. Not a byte hash."""

from __future__ import annotations

import numpy as np

from gen3d.geometry.sampling import sample_surface
from gen3d.types import Mesh

D2_BINS = 48
D2_RANGE = 4.0  # in RMS radii; longer distances go to the last bin
D2_PAIRS = 400_000


def fingerprint(mesh: Mesh, seed: int = 0) -> np.ndarray:
    """(D2_BINS + 3,) float: D2 histogram (sums to 1) then sorted second-moment eigenvalue shares."""
    samples = sample_surface(mesh, 2 * D2_PAIRS, seed).points  # (2P, 3)
    centred = samples - samples.mean(0)
    eig = np.sort(np.linalg.eigvalsh(np.cov(centred.T)))[::-1]  # (3,)
    radius = np.sqrt(eig.sum())
    distances = np.linalg.norm(centred[:D2_PAIRS] - centred[D2_PAIRS:], axis=1) / radius  # (P,)
    hist = np.bincount(np.minimum((distances / D2_RANGE * D2_BINS).astype(np.int64), D2_BINS - 1),
                       minlength=D2_BINS) / D2_PAIRS
    return np.concatenate([hist, eig / eig.sum()])


def fingerprint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """L1 distance of the D2 histograms plus L1 distance of the eigenvalue shares."""
    return float(np.abs(a - b).sum())


def duplicate_groups(fingerprints: dict[str, np.ndarray], threshold: float) -> list[list[str]]:
    """Groups (size >= 2) of ids linked by fingerprint distance < threshold (single linkage),
    each sorted; the order of the input does not matter."""
    ids = sorted(fingerprints)
    if len(ids) < 2:
        return []
    matrix = np.stack([fingerprints[i] for i in ids])  # (N, D)
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(ids), 512):  # chunked all-pairs: (512, N) distances at a time
        block = np.abs(matrix[start:start + 512, None, :] - matrix[None]).sum(-1)
        for i, j in zip(*np.nonzero(block < threshold)):
            a, b = root(start + int(i)), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[str]] = {}
    for i, name in enumerate(ids):
        groups.setdefault(root(i), []).append(name)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def keeper(group: list[str], quality: dict[str, tuple]) -> str:
    """The member kept: best `quality` tuple (larger first: e.g. textured, faces), then smallest id."""
    return min(group, key=lambda i: (tuple(-q for q in quality.get(i, ())), i))
