"""Render a Mesh into the CONVENTIONS view files (rgb, normal, depth, mask) and read them back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import torch
from PIL import Image

from gen3d.render.antialias import antialias, edge_neighbors
from gen3d.render.cameras import Cameras, transform_points
from gen3d.render.raster import interpolate, rasterize
from gen3d.render.shading import lambert, mask, sample_texture, vertex_normals, view_depth, world_normals
from gen3d.types import Mesh
from gen3d.utils.files import atomic_write

CAMERAS_FILE = "cameras.json"
MAX_DEPTH_SCALE = 10_000.0  # 16-bit depth PNG: depth = value / scale, 0.1 mm steps when far <= 6.5


@dataclass
class RenderedViews:
    """Images of one mesh from B cameras, background black."""

    rgb: torch.Tensor  # (B, H, W, 3) in [0, 1], shaded albedo
    normal: torch.Tensor  # (B, H, W, 3) world-space unit normals, facing the camera
    depth: torch.Tensor  # (B, H, W) distance along the viewing axis, 0 on background
    mask: torch.Tensor  # (B, H, W) coverage in [0, 1]


def _albedo(mesh: Mesh, fragments, faces: torch.Tensor, texture: np.ndarray | None, dtype) -> torch.Tensor:
    """(B, H, W, 3) base colour: material factor x texture (when UV-mapped) x vertex colour."""
    tri = fragments.tri_id
    device = tri.device
    material_ids = torch.as_tensor(mesh.face_materials if mesh.face_materials is not None
                                   else np.zeros(mesh.num_faces, np.int32), device=device).long()
    pixel_material = material_ids[tri.clamp(min=0)]  # (B, H, W)
    albedo = torch.ones(*tri.shape, 3, dtype=dtype, device=device)
    uv = interpolate(torch.as_tensor(mesh.uvs, dtype=dtype, device=device), fragments, faces) \
        if mesh.uvs is not None else None
    for index, material in enumerate(mesh.materials or []):
        selected = (pixel_material == index).unsqueeze(-1)
        color = torch.as_tensor(material.base_color[:3], dtype=dtype, device=device).expand_as(albedo)
        image = material.texture if material.texture is not None else texture
        if uv is not None and image is not None:
            tex = torch.tensor(np.array(image)[..., :3], dtype=dtype, device=device) / 255.0
            color = color * sample_texture(tex, uv)
        albedo = torch.where(selected, color, albedo)
    if mesh.colors is not None:
        albedo = albedo * interpolate(torch.as_tensor(mesh.colors[:, :3], dtype=dtype, device=device), fragments, faces)
    return albedo


def render_mesh(mesh: Mesh, cameras: Cameras, *, backend: str = "auto", texture: np.ndarray | None = None,
                ambient: float = 0.3) -> RenderedViews:
    """Render shaded RGB (antialiased), world normals, view depth and coverage of `mesh`.

    `texture` is a diffuse map (H, W, 3|4 uint8) for a UV-mapped mesh whose material names none.
    """
    dtype, device = cameras.c2w.dtype, cameras.device
    vertices = torch.as_tensor(mesh.vertices, dtype=dtype, device=device)
    faces = torch.as_tensor(mesh.faces, dtype=torch.int64, device=device)
    clip = transform_points(vertices, cameras.world_to_clip())  # (B, V, 4)
    fragments = rasterize(clip, faces, (cameras.height, cameras.width), backend=backend)
    if mesh.normals is not None:
        normals = torch.as_tensor(mesh.normals, dtype=dtype, device=device)
    else:
        normals = vertex_normals(vertices, faces)
    normal = world_normals(normals, fragments, faces, cameras, vertices)
    covered = mask(fragments)
    # Headlight raised above the camera, so that tops read brighter than sides.
    eye = cameras.eye().to(dtype)
    light = eye / eye.norm(dim=-1, keepdim=True) + torch.tensor([0.0, 0.6, 0.0], dtype=dtype, device=device)
    rgb = lambert(normal, _albedo(mesh, fragments, faces, texture, dtype), light, ambient) * covered
    neighbors = edge_neighbors(faces)
    rgb_mask = antialias(torch.cat([rgb, covered], dim=-1), fragments, clip, faces, neighbors)
    return RenderedViews(
        rgb=rgb_mask[..., :3].clamp(0, 1),
        normal=normal,
        depth=view_depth(vertices, faces, fragments, cameras),
        mask=rgb_mask[..., 3].clamp(0, 1),
    )


def _write_png16(path: Path, array: np.ndarray) -> None:
    """16-bit PNG of a (H, W) or (H, W, 3) uint16 array (pypng: Pillow cannot write 16-bit RGB)."""
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    writer = png.Writer(width, height, greyscale=channels == 1, bitdepth=16)
    atomic_write(path, lambda s: writer.write(s, array.reshape(height, width * channels)))


def _read_png16(path: Path) -> np.ndarray:
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    array = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    return array.reshape(height, width, info["planes"]).squeeze(-1) if info["planes"] == 1 else \
        array.reshape(height, width, info["planes"])


def depth_scale_for(far: float) -> float:
    """Largest scale <= MAX_DEPTH_SCALE with far x scale inside 16 bits."""
    return float(min(MAX_DEPTH_SCALE, np.floor(65535.0 / far)))


def write_views(views: RenderedViews, cameras: Cameras, out_dir: str | Path, extra: list[dict] | None = None) -> Path:
    """Write `{i:03d}_rgb|normal|depth|mask.png` and cameras.json into out_dir (CONVENTIONS)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scale = depth_scale_for(cameras.far)
    records = []
    for i in range(len(cameras)):
        rgb = (views.rgb[i].detach().cpu().numpy() * 255).round().astype(np.uint8)
        atomic_write(out / f"{i:03d}_rgb.png", lambda s, a=rgb: Image.fromarray(a).save(s, format="PNG"))
        normal = ((views.normal[i].detach().cpu().numpy() + 1) / 2 * 65535).round().clip(0, 65535).astype(np.uint16)
        _write_png16(out / f"{i:03d}_normal.png", normal)
        depth = (views.depth[i].detach().cpu().numpy() * scale).round().clip(0, 65535).astype(np.uint16)
        _write_png16(out / f"{i:03d}_depth.png", depth)
        coverage = (views.mask[i].detach().cpu().numpy() * 255).round().astype(np.uint8)
        atomic_write(out / f"{i:03d}_mask.png", lambda s, a=coverage: Image.fromarray(a).save(s, format="PNG"))
        record = {
            "index": i,
            "c2w": cameras.c2w[i].double().tolist(),
            "fx": float(cameras.fx[i]), "fy": float(cameras.fy[i]),
            "cx": float(cameras.cx[i]), "cy": float(cameras.cy[i]),
            "width": cameras.width, "height": cameras.height,
            "near": cameras.near, "far": cameras.far,
            "orthographic": cameras.orthographic,
            "depth_scale": scale,
        }
        records.append({**record, **(extra[i] if extra else {})})
    document = {
        "convention": "OpenGL camera (looks along -Z, +Y up); c2w camera-to-world; pixel centres at +0.5, "
                      "row 0 at the top; depth PNG = distance along the viewing axis x depth_scale, 0 = background; "
                      "normal PNG = (world normal + 1) / 2 in 16 bits",
        "depth_scale": scale,
        "views": records,
    }
    text = json.dumps(document, indent=1).encode("utf-8")
    atomic_write(out / CAMERAS_FILE, text)
    return out


def read_cameras(path: str | Path) -> tuple[Cameras, list[dict]]:
    """Cameras and raw per-view records from a cameras.json file (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / CAMERAS_FILE
    records = json.loads(path.read_text())["views"]
    first = records[0]
    column = lambda key: torch.tensor([r[key] for r in records], dtype=torch.float64)  # noqa: E731
    cameras = Cameras(torch.tensor([r["c2w"] for r in records], dtype=torch.float64), column("fx"), column("fy"),
                      column("cx"), column("cy"), first["width"], first["height"], first["near"], first["far"],
                      first.get("orthographic", False))
    return cameras, records


def read_views(folder: str | Path) -> tuple[RenderedViews, Cameras]:
    """Read back what write_views wrote: images as float tensors and the cameras."""
    folder = Path(folder)
    cameras, records = read_cameras(folder)
    rgb, normal, depth, coverage = [], [], [], []
    for r in records:
        i = r["index"]
        rgb.append(np.asarray(Image.open(folder / f"{i:03d}_rgb.png").convert("RGB"), dtype=np.float32) / 255)
        normal.append(_read_png16(folder / f"{i:03d}_normal.png").astype(np.float32) / 65535 * 2 - 1)
        depth.append(_read_png16(folder / f"{i:03d}_depth.png").astype(np.float32) / r["depth_scale"])
        coverage.append(np.asarray(Image.open(folder / f"{i:03d}_mask.png"), dtype=np.float32) / 255)
    stack = lambda arrays: torch.from_numpy(np.stack(arrays))  # noqa: E731
    return RenderedViews(stack(rgb), stack(normal), stack(depth), stack(coverage)), cameras
