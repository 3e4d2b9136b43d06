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
        "render_backends": {"torch": "not built yet", "gl": "not built yet"},
        "bundled_model": "not shipped yet (the image -> 3D issue adds gen3d/weights/tiny/)",
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
