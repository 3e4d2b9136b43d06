"""Cameras in the CONVENTIONS convention: OpenGL camera (looks along -Z, +Y up), orbit rigs, clip transforms.

Pixel (row r, column c) has its centre at (c + 0.5, r + 0.5) in pixel units, row 0 at the top;
NDC x grows to the right and NDC y upward, so x_ndc = 2 (c + 0.5) / W - 1, y_ndc = 1 - 2 (r + 0.5) / H.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_RADIUS = 2.5
DEFAULT_FOV_DEG = 40.0


@dataclass
class Cameras:
    """A batch of B pinhole (or orthographic) cameras with one image size.

    `c2w` are camera-to-world 4x4 matrices (OpenGL camera axes). For perspective cameras fx, fy
    are focal lengths in pixels; for orthographic ones they are pixels per world unit.
    """

    c2w: torch.Tensor  # (B, 4, 4)
    fx: torch.Tensor  # (B,)
    fy: torch.Tensor  # (B,)
    cx: torch.Tensor  # (B,)
    cy: torch.Tensor  # (B,)
    width: int
    height: int
    near: float = 0.1
    far: float = 10.0
    orthographic: bool = False

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def to(self, device) -> Cameras:
        move = lambda t: t.to(device)  # noqa: E731
        return Cameras(move(self.c2w), move(self.fx), move(self.fy), move(self.cx), move(self.cy),
                       self.width, self.height, self.near, self.far, self.orthographic)

    def world_to_camera(self) -> torch.Tensor:
        """(B, 4, 4) inverse of c2w."""
        return torch.linalg.inv(self.c2w)

    def projection(self) -> torch.Tensor:
        """(B, 4, 4) camera -> clip (OpenGL depth range: z_ndc = -1 at near, +1 at far)."""
        b = len(self)
        w, h, n, f = self.width, self.height, self.near, self.far
        p = torch.zeros(b, 4, 4, dtype=self.c2w.dtype, device=self.device)
        p[:, 0, 0] = 2 * self.fx / w
        p[:, 1, 1] = 2 * self.fy / h
        if self.orthographic:
            p[:, 0, 3] = 2 * self.cx / w - 1
            p[:, 1, 3] = 1 - 2 * self.cy / h
            p[:, 2, 2] = -2 / (f - n)
            p[:, 2, 3] = -(f + n) / (f - n)
            p[:, 3, 3] = 1
        else:
            p[:, 0, 2] = 1 - 2 * self.cx / w
            p[:, 1, 2] = 2 * self.cy / h - 1
            p[:, 2, 2] = -(f + n) / (f - n)
            p[:, 2, 3] = -2 * f * n / (f - n)
            p[:, 3, 2] = -1
        return p

    def world_to_clip(self) -> torch.Tensor:
        """(B, 4, 4) projection @ world_to_camera."""
        return self.projection() @ self.world_to_camera()

    def eye(self) -> torch.Tensor:
        """(B, 3) camera centres in world space."""
        return self.c2w[:, :3, 3]


def transform_points(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """(V, 3) or (B, V, 3) points times (B, 4, 4) matrices -> (B, V, 4) homogeneous results."""
    if points.dim() == 2:
        points = points.unsqueeze(0).expand(matrices.shape[0], -1, -1)
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # (B, V, 4)
    return homogeneous @ matrices.transpose(1, 2)  # (B, V, 4)


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None, up: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 4, 4) camera-to-world matrices of cameras at `eye` (B, 3) looking at `target`, OpenGL axes."""
    eye = torch.as_tensor(eye, dtype=torch.float64).reshape(-1, 3)
    target = torch.zeros_like(eye) if target is None else torch.as_tensor(target, dtype=eye.dtype).expand_as(eye)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype) if up is None else torch.as_tensor(up, dtype=eye.dtype)
    up = up.expand_as(eye).clone()
    back = torch.nn.functional.normalize(eye - target, dim=-1)  # camera +Z points away from the target
    # Looking straight up or down: the up vector is parallel to the view axis; use -Z/+Z instead.
    parallel = torch.linalg.cross(up, back).norm(dim=-1) < 1e-9
    up[parallel] = torch.tensor([0.0, 0.0, -1.0], dtype=eye.dtype) * torch.sign(back[parallel, 1:2])
    right = torch.nn.functional.normalize(torch.linalg.cross(up, back), dim=-1)
    true_up = torch.linalg.cross(back, right)
    c2w = torch.eye(4, dtype=eye.dtype).repeat(eye.shape[0], 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, true_up, back, eye
    return c2w


def orbit_eyes(elevations_deg, azimuths_deg, radius: float = DEFAULT_RADIUS) -> torch.Tensor:
    """(B, 3) orbit positions: azimuth 0 on +Z, growing toward +X; elevation > 0 above the horizon."""
    el = torch.deg2rad(torch.as_tensor(elevations_deg, dtype=torch.float64).reshape(-1))
    az = torch.deg2rad(torch.as_tensor(azimuths_deg, dtype=torch.float64).reshape(-1))
    el, az = torch.broadcast_tensors(el, az)
    return radius * torch.stack([el.cos() * az.sin(), el.sin(), el.cos() * az.cos()], dim=-1)


def orbit_cameras(
    elevations_deg, azimuths_deg, *, radius: float = DEFAULT_RADIUS, fov_deg: float = DEFAULT_FOV_DEG,
    width: int = 512, height: int | None = None, near: float = 0.1, far: float = 10.0,
    orthographic: bool = False, ortho_scale: float = 2.2, dtype: torch.dtype = torch.float32,
) -> Cameras:
    """Cameras on a sphere of `radius` looking at the origin (vertical FOV for perspective cameras;
    `ortho_scale` world units across the image height for orthographic ones)."""
    height = width if height is None else height
    c2w = look_at(orbit_eyes(elevations_deg, azimuths_deg, radius))
    b = c2w.shape[0]
    if orthographic:
        f = height / ortho_scale
    else:
        f = (height / 2) / math.tan(math.radians(fov_deg) / 2)
    full = lambda v: torch.full((b,), float(v), dtype=torch.float64)  # noqa: E731
    cams = Cameras(c2w, full(f), full(f), full(width / 2), full(height / 2), width, height, near, far, orthographic)
    return Cameras(cams.c2w.to(dtype), cams.fx.to(dtype), cams.fy.to(dtype), cams.cx.to(dtype), cams.cy.to(dtype),
                   width, height, near, far, orthographic)


def pixel_centers_ndc(height: int, width: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """NDC x of each column (W,) and NDC y of each row (H,), pixel centres at +0.5, row 0 at the top."""
    x = (torch.arange(width, device=device, dtype=dtype) + 0.5) * (2.0 / width) - 1.0
    y = 1.0 - (torch.arange(height, device=device, dtype=dtype) + 0.5) * (2.0 / height)
    return x, y
