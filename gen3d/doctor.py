"""`gen3d doctor`: versions, threads, CUDA and optional backends, as a JSON-ready report."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform

import gen3d

OPTIONAL_MODULES = {
    # import name -> (distribution to install, what it enables)
    "moderngl": ("moderngl", "OpenGL/EGL rasterizer backend"),
    "nvdiffrast": ("nvdiffrast (build from source)", "nvdiffrast rasterizer backend"),
    "pytorch3d": ("pytorch3d (build from source)", "pytorch3d rasterizer backend"),
    "ray": ("gen3d[ray]", "Ray executor for dataset jobs"),
    "fastapi": ("fastapi", "HTTP job API"),
    "embreex": ("embreex", "fast ray queries in trimesh"),
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _render_backends() -> dict:
    """Which rasterizer backends work here, each tried on a one-triangle scene."""
    import torch

    from gen3d.render.raster import rasterize

    clip = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])
    faces = torch.tensor([[0, 1, 2]])
    status = {}
    for backend in ("torch", "gl"):
        try:
            covered = int((rasterize(clip, faces, 8, backend=backend).tri_id >= 0).sum())
            status[backend] = "ok" if covered > 0 else "broken: nothing rasterized"
        except ImportError as exc:
            status[backend] = f"missing ({exc})"
        except Exception as exc:  # report any driver failure instead of crashing doctor
            status[backend] = f"broken: {exc}"
    if status.get("gl") == "ok":
        from gen3d.render.raster_gl import gl_renderer_name

        status["gl"] = f"ok ({gl_renderer_name()})"
    status["auto"] = "gl" if status.get("gl", "").startswith("ok") else "torch"
    return status


def _bundled_models() -> dict:
    """Whether each bundled model folder loads: the shape VAE and the image -> 3D DiT."""
    from gen3d.errors import InputError
    from gen3d.pipelines.image_to_3d import BUNDLED
    from gen3d.stages.shape_dit.sample import LatentSampler
    from gen3d.stages.shape_vae.model import BUNDLED_VAE, load_vae

    report = {}
    for name, folder, load in (("vae", BUNDLED_VAE, load_vae), ("dit", BUNDLED / "dit", LatentSampler.from_pretrained)):
        try:
            model = load(folder)
            network = getattr(model, "net", model)
            report[name] = {"status": "ok", "path": str(folder),
                            "parameters": sum(p.numel() for p in network.parameters())}
        except InputError as exc:
            report[name] = {"status": f"not loadable: {exc.message}", "path": str(folder)}
    return report


def doctor_report() -> dict:
    """Everything `gen3d doctor` prints; never raises for a missing optional part."""
    import torch

    report: dict = {
        "gen3d": gen3d.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "core": {d: _version(d) for d in ("numpy", "trimesh", "libigl", "scikit-image", "fast-simplification",
                                          "xatlas", "safetensors", "manifold3d")},
        "optional": {},
        "render_backends": _render_backends(),
        "bundled_model": _bundled_models(),
    }
    for module, (install, purpose) in OPTIONAL_MODULES.items():
        try:
            importlib.import_module(module)
            status = "ok"
        except ImportError:
            status = f"missing (install {install})"
        except Exception as exc:  # a broken optional install must not break doctor
            status = f"broken: {exc}"
        report["optional"][module] = {"status": status, "for": purpose}
    return report
