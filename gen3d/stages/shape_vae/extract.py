"""Iso-surface extraction from an implicit field: dense (Direct3D's 513^3 grid) and hierarchical.

Hierarchical (coarse-to-fine, in the spirit of Occupancy Networks' MISE): evaluate a coarse grid,
then at each finer level evaluate only the nodes of cells whose corners straddle the level or come
within a band of it (a guard for parts thinner than the coarse spacing); unevaluated nodes take the
trilinear value of the coarser level, which keeps the sign of a cell without a crossing. At every
level the crossing cells are closed over: a crossing cell with an interpolated corner gets that
corner evaluated, until every crossing cell is exact. Marching cubes then runs on the fine grid
restricted to crossing cells, so the surface equals the dense one wherever the coarse levels see
the part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from skimage import measure

from gen3d.types import Mesh

QueryFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 3) points in [-1, 1]^3 -> (N,) values, positive inside
DEFAULT_CHUNK = 262_144  # points per decoder call: bounds memory on CPU and GPU


@dataclass
class ExtractionStats:
    resolution: int
    queries: int
    query_seconds: float
    total_seconds: float
    levels: int


class _Counter:
    """Evaluates nodes of the fine lattice in chunks and counts queries."""

    def __init__(self, fn: QueryFn, resolution: int, device, chunk: int):
        self.fn, self.resolution, self.device, self.chunk = fn, resolution, torch.device(device), chunk
        self.queries, self.seconds = 0, 0.0

    def __call__(self, nodes: np.ndarray) -> np.ndarray:
        """(N, 3) integer fine-lattice indices -> (N,) float32 values."""
        start = time.perf_counter()
        out = np.empty(len(nodes), dtype=np.float32)
        scale = 2.0 / self.resolution
        with torch.no_grad():
            for lo in range(0, len(nodes), self.chunk):
                idx = torch.from_numpy(nodes[lo: lo + self.chunk]).to(self.device)
                points = idx.float() * scale - 1.0  # (n, 3) in [-1, 1]
                out[lo: lo + len(idx)] = self.fn(points).float().cpu().numpy()
        self.queries += len(nodes)
        self.seconds += time.perf_counter() - start
        return out


def _lattice(count: int, stride: int) -> np.ndarray:
    axis = np.arange(count) * stride
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def extract_dense(fn: QueryFn, resolution: int = 512, *, level: float = 0.0, device="cpu",
                  chunk: int = DEFAULT_CHUNK) -> tuple[Mesh | None, ExtractionStats]:
    """Evaluate all (resolution + 1)^3 nodes on [-1, 1]^3, then marching cubes (the baseline)."""
    start = time.perf_counter()
    counter = _Counter(fn, resolution, device, chunk)
    n = resolution + 1
    values = counter(_lattice(n, 1)).reshape(n, n, n)
    mesh = lattice_surface(values, level, resolution, mask=None)
    return mesh, ExtractionStats(resolution, counter.queries, counter.seconds, time.perf_counter() - start, 1)


def extract_hierarchical(fn: QueryFn, resolution: int = 512, *, level: float = 0.0, coarse: int = 64,
                         band: float = 0.0, device="cpu", chunk: int = DEFAULT_CHUNK,
                         coarse_values: np.ndarray | None = None) -> tuple[Mesh | None, ExtractionStats]:
    """Coarse-to-fine extraction: the same surface as `extract_dense` with a fraction of the queries.

    Cells whose corners come within `band` of the level are refined too (a guard for parts thinner
    than the coarse spacing, in the field's units). `coarse_values` ((coarse + 1)^3, indexed x, y, z):
    the field on the coarse lattice when the caller has it already (not queried again)."""
    if resolution % coarse or (resolution // coarse) & (resolution // coarse - 1):
        raise ValueError(f"resolution {resolution} must be coarse ({coarse}) times a power of two")
    start = time.perf_counter()
    counter = _Counter(fn, resolution, device, chunk)
    stride = resolution // coarse
    if coarse_values is None:
        values = counter(_lattice(coarse + 1, stride)).reshape((coarse + 1,) * 3)  # the stride lattice
    elif coarse_values.shape != (coarse + 1,) * 3:
        raise ValueError(f"coarse_values has shape {coarse_values.shape}, expected {(coarse + 1,) * 3}")
    else:
        values = coarse_values.astype(np.float32)
    known = np.ones_like(values, dtype=bool)
    levels = 1
    while True:
        active = _close_crossings(values, known, level, stride, counter)
        if stride == 1:
            break
        near = _band_cells(values, level, band) if band > 0 else active
        values, known = _refine(values, known, active | near, stride, counter)
        stride //= 2
        levels += 1
    mesh = lattice_surface(values, level, resolution, mask=_corner_nodes(active, values.shape))
    return mesh, ExtractionStats(resolution, counter.queries, counter.seconds, time.perf_counter() - start, levels)


def _cell_any(mask: np.ndarray) -> np.ndarray:
    """(C, C, C) cells with any of their 8 corner nodes True, from an (C + 1)^3 node mask."""
    n = mask.shape[0] - 1
    out = np.zeros((n, n, n), dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                out |= mask[dx: n + dx, dy: n + dy, dz: n + dz]
    return out


def _crossing_cells(values: np.ndarray, level: float) -> np.ndarray:
    """(C, C, C) cells whose 8 corner values are not all on one side of `level`."""
    return _cell_any(values > level) & _cell_any(values <= level)


def _band_cells(values: np.ndarray, level: float, band: float) -> np.ndarray:
    """Cells whose corner values reach into [level - band, level + band] (crossings included)."""
    return _cell_any(values > level - band) & _cell_any(values < level + band)


def _corner_nodes(cells: np.ndarray, shape: tuple) -> np.ndarray:
    """Boolean node mask of all corners of the True cells."""
    nodes = np.zeros(shape, dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                nodes[dx: shape[0] - 1 + dx, dy: shape[1] - 1 + dy, dz: shape[2] - 1 + dz] |= cells
    return nodes


def _close_crossings(values, known, level, stride, counter) -> np.ndarray:
    """Evaluate interpolated corners of crossing cells until every crossing cell is exact; returns them."""
    while True:
        crossing = _crossing_cells(values, level)
        todo = np.argwhere(_corner_nodes(crossing, values.shape) & ~known)
        if len(todo) == 0:
            return crossing
        values[tuple(todo.T)] = counter(todo * stride)
        known[tuple(todo.T)] = True


def _refine(values, known, active, stride, counter):
    """Next level (stride / 2): trilinear upsampling, then exact values at the corners of the children of
    the active cells."""
    fine_values = _upsample2(values)
    fine_known = np.zeros(fine_values.shape, dtype=bool)
    fine_known[::2, ::2, ::2] = known
    children = np.repeat(np.repeat(np.repeat(active, 2, 0), 2, 1), 2, 2)
    todo = np.argwhere(_corner_nodes(children, fine_values.shape) & ~fine_known)
    fine_values[tuple(todo.T)] = counter(todo * (stride // 2))
    fine_known[tuple(todo.T)] = True
    return fine_values, fine_known


def _upsample2(v: np.ndarray) -> np.ndarray:
    """Trilinear upsampling of an (n, n, n) node grid to (2n - 1)^3 (old nodes at even indices, exact)."""
    m = 2 * v.shape[0] - 1
    out = np.empty((m, m, m), dtype=v.dtype)
    out[::2, ::2, ::2] = v
    out[1::2, ::2, ::2] = 0.5 * (v[:-1] + v[1:])  # x midpoints
    out[:, 1::2, ::2] = 0.5 * (out[:, :-1:2, ::2] + out[:, 2::2, ::2])  # y midpoints
    out[:, :, 1::2] = 0.5 * (out[:, :, :-1:2] + out[:, :, 2::2])  # z midpoints
    return out


def lattice_surface(values: np.ndarray, level: float, resolution: int, mask: np.ndarray | None) -> Mesh | None:
    """Outward-oriented surface of {values > level} of lattice values over [-1, 1]^3 (`resolution` cells per
    side), or None when there is none."""
    if not values.min() < level < values.max():
        return None
    spacing = 2.0 / resolution
    verts, faces, _, _ = measure.marching_cubes(-values, level=-level, spacing=(spacing,) * 3, mask=mask)
    return Mesh(vertices=verts - 1.0, faces=faces.astype(np.int64))
