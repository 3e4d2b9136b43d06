"""Contact sheet of procedural shapes (docs/procedural_shapes.png): flat-shaded, painter's algorithm.

A preview tool only: gen3d's differentiable renderer lives in gen3d/render. Usage:
    python tools/contact_sheet.py docs/procedural_shapes.png --per-family 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gen3d.geometry.procedural import FAMILIES, generate_shape


def orbit_rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """World -> camera rotation of an orbit camera (azimuth 0 on +Z, toward +X; elevation above)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    eye = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    forward = -eye
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, -forward])  # rows: camera x, y, z (camera looks along -z)


def draw_mesh(vertices: np.ndarray, faces: np.ndarray, size: int, azimuth: float = 35, elevation: float = 20):
    """Orthographic flat-shaded image of a mesh in [-1, 1]^3."""
    rotation = orbit_rotation(azimuth, elevation)
    cam = vertices @ rotation.T  # (V, 3) camera coordinates
    tri = cam[faces]  # (F, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    light = np.array([0.4, 0.6, 0.7]) / np.linalg.norm([0.4, 0.6, 0.7])
    shade = np.clip(normals @ light, 0, 1) * 0.75 + 0.2
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    visible = normals[:, 2] > 0
    order = np.argsort(tri[:, :, 2].mean(axis=1))  # far to near
    scale = size / 2.1
    for f in order:
        if not visible[f]:
            continue
        xy = [(size / 2 + x * scale, size / 2 - y * scale) for x, y, _ in tri[f]]
        g = int(255 * shade[f])
        draw.polygon(xy, fill=(int(g * 0.85), int(g * 0.9), g))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-family", type=int, default=4)
    parser.add_argument("--tile", type=int, default=160)
    args = parser.parse_args()
    families = list(FAMILIES)
    sheet = Image.new("RGB", (args.tile * args.per_family, args.tile * len(families)), (255, 255, 255))
    for row, family in enumerate(families):
        for col in range(args.per_family):
            mesh, _ = generate_shape(family, seed=col)
            tile = draw_mesh(mesh.vertices, mesh.faces, args.tile)
            ImageDraw.Draw(tile).text((4, 4), f"{family} #{col}", fill=(0, 0, 0))
            sheet.paste(tile, (col * args.tile, row * args.tile))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(families)} families x {args.per_family})")


if __name__ == "__main__":
    main()
