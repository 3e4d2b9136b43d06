"""GPU check of the torch rasterizer and a sampler: CUDA results equal CPU ones, and timings.

    python tools/gpu_check.py [--out results.json]

Needs only torch (the GPU image has none of gen3d's other dependencies): meshes are made here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gen3d.diffusion.sampling import sample  # noqa: E402
from gen3d.diffusion.schedules import logsnr_sigmas  # noqa: E402
from gen3d.render.antialias import antialias, edge_neighbors  # noqa: E402
from gen3d.render.cameras import orbit_cameras, transform_points  # noqa: E402
from gen3d.render.raster import interpolate, rasterize  # noqa: E402
from gen3d.render.shading import mask, vertex_normals  # noqa: E402


def uv_sphere(rings: int, segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed UV sphere of radius 0.9 with 2 * segments * (rings - 1) faces, bumpy so it is not trivial."""
    theta = torch.linspace(0, math.pi, rings + 1, dtype=torch.float64)[1:-1]
    phi = torch.linspace(0, 2 * math.pi, segments + 1, dtype=torch.float64)[:-1]
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    r = 0.9 * (1 + 0.05 * torch.sin(7 * p) * torch.sin(5 * t))
    body = torch.stack([r * t.sin() * p.cos(), r * t.cos(), r * t.sin() * p.sin()], -1).reshape(-1, 3)
    vertices = torch.cat([torch.tensor([[0, 0.9, 0], [0, -0.9, 0]], dtype=torch.float64), body])
    idx = torch.arange(len(body)).reshape(rings - 1, segments) + 2
    nxt = torch.roll(idx, -1, dims=1)
    faces = [torch.stack([torch.zeros(segments, dtype=torch.long), nxt[0], idx[0]], -1),
             torch.stack([torch.ones(segments, dtype=torch.long), idx[-1], nxt[-1]], -1)]
    a, b, c, d = idx[:-1], nxt[:-1], idx[1:], nxt[1:]
    faces += [torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)]
    return vertices.float(), torch.cat(faces)


def run(vertices, faces, cams, res, device, backward):
    v = vertices.to(device).clone().requires_grad_(backward)
    f = faces.to(device)
    clip = transform_points(v, cams.world_to_clip().to(device))
    frags = rasterize(clip, f, res, backend="torch")
    image = antialias(torch.cat([mask(frags), interpolate(vertex_normals(v, f), frags, f)], -1), frags, clip, f,
                      edge_neighbors(f))
    grad = None
    if backward:
        image.sum().backward()
        grad = v.grad
    return frags, image, grad


def timed(fn, device, repeats=5):
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    vertices, faces = uv_sphere(150, 240)  # ~71k faces, like the bunny
    results["faces"] = int(len(faces))
    cams = orbit_cameras([20] * 4, [0, 90, 180, 270], width=512, radius=2.5)
    cpu_frags, cpu_image, cpu_grad = run(vertices, faces, cams, 512, "cpu", True)
    gpu_frags, gpu_image, gpu_grad = run(vertices, faces, cams, 512, "cuda", True)
    covered = (cpu_frags.tri_id >= 0) | (gpu_frags.tri_id.cpu() >= 0)
    same = (cpu_frags.tri_id == gpu_frags.tri_id.cpu()) & (cpu_frags.tri_id >= 0)
    results["ids_equal_share"] = float((cpu_frags.tri_id == gpu_frags.tri_id.cpu())[covered].float().mean())
    results["bary_max_diff"] = float((cpu_frags.bary - gpu_frags.bary.cpu()).detach()[same].abs().max())
    results["image_max_diff"] = float((cpu_image - gpu_image.cpu()).detach().abs().max())
    results["grad_rel_diff"] = float((cpu_grad - gpu_grad.cpu()).norm() / cpu_grad.norm())
    for res in (512, 1024, 2048):
        cams_r = orbit_cameras([20] * 4, [0, 90, 180, 270], width=res, radius=2.5)
        for device in ("cpu", "cuda") if res == 512 else ("cuda",):
            results[f"{device}_fwd_{res}_s"] = timed(lambda d=device, c=cams_r, r=res: run(vertices, faces, c, r, d,
                                                                                          False), device)
            results[f"{device}_fwd_bwd_{res}_s"] = timed(lambda d=device, c=cams_r, r=res: run(vertices, faces, c, r,
                                                                                              d, True), device)
    # A sampler on CUDA equals the CPU run (exact Gaussian denoiser, float64).
    mean = torch.linspace(-1, 1, 8, dtype=torch.float64)
    var = torch.logspace(-1, 0.5, 8, dtype=torch.float64)

    def denoiser(x, sigma, cond=None):
        s = sigma.reshape(-1, 1).to(x)
        return mean.to(x) + var.to(x) / (var.to(x) + s**2) * (x - mean.to(x))

    x_T = torch.randn(256, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 20
    sigmas = logsnr_sigmas(12, 0.02, 20.0)
    cpu = sample("unipc_bh2", denoiser, x_T.clone(), sigmas)
    gpu = sample("unipc_bh2", denoiser, x_T.cuda(), sigmas.cuda())
    results["sampler_max_diff"] = float((cpu - gpu.cpu()).abs().max())
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
