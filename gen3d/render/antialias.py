"""Analytic antialiasing of silhouette edges, differentiable in the vertex positions.

The approach of nvdiffrast's `antialias` (Laine et al. 2020, "Modular Primitives for
High-Performance Differentiable Rendering"): between two neighbouring pixels covered by
different triangles, find the silhouette edge of the occluding triangle that crosses the segment
joining their centres, at fraction alpha from the occluder's pixel. If alpha > 1/2 the other
pixel is partly covered and moves toward the occluder's colour by (alpha - 1/2); otherwise the
occluder's pixel is partly uncovered and moves toward the other colour by (1/2 - alpha). The
image is continuous in alpha, so d(image)/d(vertices) is non-zero exactly at silhouettes, which
is what mask and image losses need to move geometry. It costs work only at discontinuities,
unlike soft rasterizers that blur every triangle over every pixel.
"""

from __future__ import annotations

import torch

from gen3d.render.cameras import pixel_centers_ndc
from gen3d.render.raster import Fragments, edge_functions


def edge_neighbors(faces: torch.Tensor) -> torch.Tensor:
    """(F, 3) face across the edge opposite each corner, -1 for boundary or non-manifold edges."""
    faces = faces.to(torch.int64)
    num_faces = faces.shape[0]
    corner = torch.arange(3, device=faces.device)
    a = faces[:, (corner + 1) % 3]  # (F, 3) edge opposite corner i runs a -> b
    b = faces[:, (corner + 2) % 3]
    key = torch.minimum(a, b) * (int(faces.max()) + 1) + torch.maximum(a, b)  # (F, 3)
    flat = key.reshape(-1)
    order = torch.argsort(flat)
    sorted_keys = flat[order]
    _, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
    group_start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    group_size = torch.repeat_interleave(counts, counts)
    position = torch.arange(len(flat), device=faces.device) - group_start
    partner_sorted = torch.where(position == 0, group_start + 1, group_start)  # the other of a pair
    neighbor = torch.full_like(flat, -1)
    paired = group_size == 2
    neighbor[order[paired]] = order[partner_sorted[paired]] // 3
    return neighbor.reshape(num_faces, 3)


def _edge_values(corners: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """(N, 3) oriented edge functions of points (px, py) for triangles (N, 3, 4): >= 0 inside.

    Affine in (px, py), so zero crossings between two pixel centres interpolate exactly.
    """
    values, _, orientation = edge_functions(corners, px, py)
    return values * orientation


def _facing(corners: torch.Tensor) -> torch.Tensor:
    """(N,) +1 for front-facing (counter-clockwise on screen), -1 for back-facing."""
    v = corners[..., [0, 1, 3]]  # (N, 3, 3) homogeneous (x, y, w)
    return torch.sign((v[:, 0] * torch.linalg.cross(v[:, 1], v[:, 2])).sum(-1))


def antialias(color: torch.Tensor, fragments: Fragments, clip: torch.Tensor, faces: torch.Tensor,
              neighbors: torch.Tensor | None = None) -> torch.Tensor:
    """Blend colours (B, H, W, C) across silhouette edges; gradients reach `clip` (B, V, 4)."""
    clip = clip if clip.dim() == 3 else clip.unsqueeze(0)
    faces = faces.to(device=clip.device, dtype=torch.int64)
    neighbors = edge_neighbors(faces) if neighbors is None else neighbors
    tri = fragments.tri_id
    batch, height, width = tri.shape
    depth = fragments.depth.detach()
    xs, ys = pixel_centers_ndc(height, width, device=clip.device, dtype=clip.dtype)
    flat_color = color.reshape(batch * height * width, -1)
    # Only a triangle with a silhouette edge in a view (a boundary edge, or a neighbour facing
    # the other way) can occlude across a pixel pair: filter pairs on that before any geometry.
    with torch.no_grad():
        facing = _facing(clip[:, faces].reshape(-1, 3, 4)).reshape(batch, -1)  # (B, F)
        neighbor_facing = facing[:, neighbors.clamp(min=0)]  # (B, F, 3)
        has_silhouette = ((neighbors < 0)[None] | (neighbor_facing != facing[..., None])).any(-1)  # (B, F)
        has_silhouette = torch.cat([has_silhouette, torch.zeros_like(has_silhouette[:, :1])], dim=1)
        view_index = torch.arange(batch, device=tri.device).view(-1, 1, 1)
        occluder_ok = has_silhouette[view_index, torch.where(tri >= 0, tri, has_silhouette.shape[1] - 1)]
    deltas = []
    for d_row, d_col in ((0, 1), (1, 0)):
        p_tri, q_tri = tri[:, : height - d_row, : width - d_col], tri[:, d_row:, d_col:]
        p_ok = occluder_ok[:, : height - d_row, : width - d_col]
        q_ok = occluder_ok[:, d_row:, d_col:]
        view, row, col = ((p_tri != q_tri) & (p_ok | q_ok)).nonzero(as_tuple=True)  # p; q = p + (d_row, d_col)
        p_index = (view * height + row) * width + col
        q_index = p_index + d_row * width + d_col
        best = None
        for occluder, other in ((p_index, q_index), (q_index, p_index)):
            t = tri.reshape(-1)[occluder]
            covered = t >= 0
            t = t.clamp(min=0)
            corners = clip[view[:, None], faces[t]]  # (N, 3, 4)
            ox, oy = xs[occluder % width], ys[(occluder // width) % height]
            qx, qy = xs[other % width], ys[(other // width) % height]
            f_o = _edge_values(corners, ox, oy)  # (N, 3)
            f_x = _edge_values(corners, qx, qy)
            crossing = (f_o >= 0) & (f_x < 0)
            with torch.no_grad():
                n = neighbors[t]  # (N, 3)
                own = facing[view, t]  # (N,)
                silhouette = (n < 0) | (facing[view[:, None], n.clamp(min=0)] != own[:, None])
            alpha_all = f_o / (f_o - f_x).clamp_min(1e-30)  # (N, 3)
            usable = crossing & silhouette & covered[:, None]
            alpha_masked = torch.where(usable, alpha_all.detach(), torch.full_like(alpha_all, 2.0))
            edge = alpha_masked.argmin(-1)  # the crossing nearest the occluder's pixel
            valid = usable.any(-1)
            # The occluder must be in front of whatever the other pixel shows.
            other_tri = tri.reshape(-1)[other]
            valid &= (other_tri < 0) | (depth.reshape(-1)[occluder] <= depth.reshape(-1)[other])
            alpha = alpha_all.gather(1, edge[:, None]).squeeze(1)
            candidate = (valid, alpha, occluder, other)
            if best is None:
                best = candidate
            else:
                take_new = valid & ~best[0]
                best = (best[0] | valid, torch.where(take_new, alpha, best[1]),
                        torch.where(take_new, occluder, best[2]), torch.where(take_new, other, best[3]))
        valid, alpha, occluder, other = best
        alpha, occluder, other = alpha[valid], occluder[valid], other[valid]
        c_o, c_x = flat_color[occluder], flat_color[other]
        spill = (alpha - 0.5).clamp(min=0)[:, None]  # other pixel partly covered by the occluder
        retreat = (0.5 - alpha).clamp(min=0)[:, None]  # occluder pixel partly uncovered
        deltas.append((other, spill * (c_o - c_x)))
        deltas.append((occluder, retreat * (c_x - c_o)))
    out = flat_color
    for index, delta in deltas:
        out = out.index_add(0, index, delta)
    return out.reshape(color.shape)
