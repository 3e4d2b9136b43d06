"""Shaders: functions from fragments (and per-vertex data) to images. All differentiable."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gen3d.render.cameras import Cameras
from gen3d.render.raster import Fragments, interpolate


def mask(fragments: Fragments) -> torch.Tensor:
    """(B, H, W, 1) coverage: 1 where a triangle is seen. Antialias it for silhouette gradients."""
    return (fragments.tri_id >= 0).to(fragments.bary.dtype).unsqueeze(-1)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) area-weighted unit vertex normals (differentiable in the vertices)."""
    tri = vertices[faces]  # (F, 3, 3)
    face_n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3), length = 2 area
    normals = torch.zeros_like(vertices).index_add(0, faces.reshape(-1), face_n.repeat_interleave(3, dim=0))
    return F.normalize(normals, dim=-1, eps=1e-12)


def face_normals_image(vertices: torch.Tensor, faces: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """(B, H, W, 3) flat (per-face) world-space unit normals, zero on background."""
    tri = vertices[faces]  # (F, 3, 3)
    face_n = F.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1, eps=1e-12)
    out = face_n[fragments.tri_id.clamp(min=0)]  # (B, H, W, 3)
    return out * (fragments.tri_id >= 0).unsqueeze(-1)


def world_normals(normals: torch.Tensor, fragments: Fragments, faces: torch.Tensor,
                  cameras: Cameras | None = None, vertices: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W, 3) interpolated, renormalized world-space normals.

    With `cameras` and `vertices`, normals pointing away from the camera (the inside of an open
    mesh seen through a hole) are flipped to face it.
    """
    n = F.normalize(interpolate(normals, fragments, faces), dim=-1, eps=1e-12)  # (B, H, W, 3)
    if cameras is not None and vertices is not None:
        points = interpolate(vertices, fragments, faces)  # (B, H, W, 3) surface points
        to_camera = cameras.eye().to(points.dtype)[:, None, None, :] - points
        n = torch.where(((n * to_camera).sum(-1, keepdim=True) < 0), -n, n)
    return n


def camera_normals(world: torch.Tensor, cameras: Cameras) -> torch.Tensor:
    """(B, H, W, 3) world-space normals expressed in each camera's frame (OpenGL axes)."""
    rotation = cameras.world_to_camera()[:, :3, :3].to(world.dtype)  # (B, 3, 3)
    return torch.einsum("bij,bhwj->bhwi", rotation, world)


def view_depth(vertices: torch.Tensor, faces: torch.Tensor, fragments: Fragments, cameras: Cameras) -> torch.Tensor:
    """(B, H, W) distance along each camera's viewing axis (-z in camera space), 0 on background.

    Camera-space depth is affine on a triangle, so interpolating it with perspective-correct
    barycentrics is exact.
    """
    w2c = cameras.world_to_camera().to(vertices.dtype)  # (B, 4, 4)
    z_cam = vertices @ w2c[:, 2, :3].T + w2c[:, 2, 3]  # (V, B) camera-space z of every vertex
    depth = interpolate(-z_cam.T.unsqueeze(-1), fragments, faces)  # (B, H, W, 1)
    return depth.squeeze(-1)


def sample_texture(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of texture (Ht, Wt, C) at uv (B, H, W, 2); v = 0 is the bottom row; UVs wrap."""
    uv = torch.remainder(uv, 1.0)
    grid = torch.stack([2 * uv[..., 0] - 1, 1 - 2 * uv[..., 1]], dim=-1)  # (B, H, W, 2), y = -1 at the top
    image = texture.permute(2, 0, 1).unsqueeze(0).expand(uv.shape[0], -1, -1, -1).to(uv.dtype)  # (B, C, Ht, Wt)
    sampled = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.permute(0, 2, 3, 1)  # (B, H, W, C)


def lambert(normals: torch.Tensor, albedo: torch.Tensor, light_dirs: torch.Tensor,
            ambient: float = 0.3) -> torch.Tensor:
    """(B, H, W, C) albedo x (ambient + (1 - ambient) max(0, n . l)), light_dirs (B, 3) toward the light."""
    light = F.normalize(light_dirs.to(normals.dtype), dim=-1)[:, None, None, :]
    diffuse = (normals * light).sum(-1, keepdim=True).clamp(min=0)
    return albedo * (ambient + (1 - ambient) * diffuse)
