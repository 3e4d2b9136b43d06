"""Sheet of gen3d renders of real meshes (docs/renders.png): shaded RGB and world normals, 4 views each.

    python tools/render_sheet.py docs/renders.png [--res 160]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from gen3d.geometry.io import load_mesh
from gen3d.geometry.transform import normalize
from gen3d.render.cameras import orbit_cameras
from gen3d.render.views import render_mesh

MESHES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "meshes"
# Only meshes whose licence allows redistributing renders (see NOTICE): spot (public domain) and
# CesiumMilkTruck (CC-BY 4.0, (c) 2017 Cesium). The bunny is checked in tests, not shipped.
CASES = [("spot.obj", "spot_texture.png"), ("CesiumMilkTruck.glb", None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--res", type=int, default=160)
    args = parser.parse_args()
    rows = []
    for name, texture_name in CASES:
        mesh, _ = normalize(load_mesh(MESHES / name))
        texture = np.asarray(Image.open(MESHES / texture_name).convert("RGB")) if texture_name else None
        cams = orbit_cameras([20] * 4, [0, 90, 180, 270], width=args.res, radius=3.2)
        views = render_mesh(mesh, cams, texture=texture)
        rgb = np.concatenate([(v.numpy() * 255).astype(np.uint8) for v in views.rgb], axis=1)
        normal = np.concatenate([((v.numpy() + 1) / 2 * 255).astype(np.uint8) * (m.numpy()[..., None] > 0)
                                 for v, m in zip(views.normal, views.mask)], axis=1)
        rows += [rgb, normal]
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
