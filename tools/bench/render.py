"""Benchmark: differentiable rasterization (torch and gl backends) vs a plain moderngl render.

    python tools/bench/render.py [--repeats 3] [--json]

Forward = rasterize + interpolate vertex normals + antialias (mask and normals); backward = the
gradient of a weighted sum of that image with respect to the vertex positions. The peer measured
in the same run is a plain, non-differentiable moderngl (EGL/llvmpipe) render of the same views
with depth test and a flat colour; pytorch3d cannot be installed here (figures from the issue
are quoted in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gen3d.geometry.cleanup import simplify  # noqa: E402
from gen3d.geometry.io import load_mesh  # noqa: E402
from gen3d.geometry.transform import normalize  # noqa: E402
from gen3d.render.antialias import antialias, edge_neighbors  # noqa: E402
from gen3d.render.cameras import orbit_cameras, transform_points  # noqa: E402
from gen3d.render.raster import interpolate, rasterize  # noqa: E402
from gen3d.render.raster_gl import gl_available  # noqa: E402
from gen3d.render.shading import mask, vertex_normals  # noqa: E402
from gen3d.types import Mesh  # noqa: E402

MESHES = REPO.parent / "shared" / "data" / "meshes"


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (first-call allocations, GL context)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def differentiable(vertices, faces, matrix, res, backend, neighbors, backward: bool):
    positions = vertices.clone().requires_grad_(backward)
    clip = transform_points(positions, matrix)
    frags = rasterize(clip, faces, res, backend=backend)
    normals = interpolate(vertex_normals(positions, faces), frags, faces)
    image = antialias(torch.cat([mask(frags), normals], dim=-1), frags, clip, faces, neighbors)
    if backward:
        image.sum().backward()


@functools.lru_cache(maxsize=1)
def _plain_gl():
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl")
    prog = ctx.program(
        vertex_shader="#version 330\nin vec4 p; void main() { gl_Position = p; }",
        fragment_shader="#version 330\nout vec4 c; void main() { c = vec4(1.0); }",
    )
    return ctx, prog


def plain_moderngl(clip: np.ndarray, faces: np.ndarray, res: int):
    """The peer: a standard GL draw (depth test, flat colour) of each view, read back as RGBA8."""
    import moderngl

    ctx, prog = _plain_gl()
    fbo = ctx.simple_framebuffer((res, res))
    fbo.use()
    ctx.enable(moderngl.DEPTH_TEST)
    index = ctx.buffer(faces.astype(np.int32).tobytes())
    for view in clip:
        vbo = ctx.buffer(np.ascontiguousarray(view, dtype=np.float32).tobytes())
        vao = ctx.vertex_array(prog, [(vbo, "4f", "p")], index_buffer=index, index_element_size=4)
        fbo.clear(0, 0, 0, 0)
        vao.render()
        fbo.read(components=4)
        vao.release()
        vbo.release()
    index.release()
    fbo.release()


def cases() -> list[tuple[str, Mesh, int]]:
    bunny, _ = normalize(load_mesh(MESHES / "stanford-bunny.obj"))
    cube = trimesh.creation.box(extents=(1.9, 1.9, 1.9))
    out = [("bunny", bunny, 512), ("bunny", bunny, 256), ("bunny", bunny, 1024)]
    for faces in (5_000, 20_000):
        out.append((f"bunny-{faces // 1000}k", simplify(bunny, faces), 512))
    big = trimesh.Trimesh(bunny.vertices, bunny.faces).subdivide()
    out.append(("bunny-x4", Mesh(big.vertices, big.faces), 512))
    out += [("cube (12 faces)", Mesh(cube.vertices, cube.faces), res) for res in (512, 1024)]
    return out


def measure(name: str, mesh: Mesh, res: int, repeats: int, backends: list[str]) -> dict:
    cams = orbit_cameras([20] * 4, [0, 90, 180, 270], width=res, radius=2.5)
    matrix = cams.world_to_clip()
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces)
    neighbors = edge_neighbors(faces)
    row = {"case": name, "faces": mesh.num_faces, "views": 4, "res": res}
    for backend in backends:
        for backward, key in ((False, "forward_s"), (True, "forward_backward_s")):
            row[f"{backend}_{key}"] = best_of(
                functools.partial(differentiable, vertices, faces, matrix, res, backend, neighbors, backward), repeats)
    if gl_available():
        from gen3d.render.raster_gl import rasterize_ids_gl

        clip = transform_points(vertices, matrix)
        row["plain_moderngl_s"] = best_of(functools.partial(plain_moderngl, clip.numpy(), mesh.faces, res), repeats)
        row["gl_ids_only_s"] = best_of(functools.partial(rasterize_ids_gl, clip, faces, res, res), repeats)
    return row


def table_row(r: dict) -> str:
    def get(key: str) -> str:
        return f"{r[key]:.3f} s" if key in r else "n/a"

    ratio = f"{r['torch_forward_backward_s'] / r['plain_moderngl_s']:.0f}x" if "plain_moderngl_s" in r else "n/a"
    return (f"| {r['case']} | {r['faces']} | {r['res']} | {get('torch_forward_s')} | {get('torch_forward_backward_s')}"
            f" | {get('gl_forward_s')} | {get('gl_forward_backward_s')} | {get('gl_ids_only_s')} | "
            f"{get('plain_moderngl_s')} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    backends = ["torch"] + (["gl"] if gl_available() else [])
    rows = []
    for name, mesh, res in cases():
        rows.append(measure(name, mesh, res, args.repeats, backends))
        if args.json:
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        return
    print(f"# render benchmark, {platform.machine()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}, "
          f"best of {args.repeats}, 4 views")
    print("| case | faces | res | torch fwd | torch fwd+bwd | gl fwd | gl fwd+bwd | gl ids only | plain moderngl "
          "| torch fwd+bwd / plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(table_row(r))


if __name__ == "__main__":
    main()
