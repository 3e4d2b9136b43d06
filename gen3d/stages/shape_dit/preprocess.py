"""Condition-image preprocessing for image -> 3D: any PIL mode to RGBA, a foreground mask (the alpha
channel, else a border-colour estimate, or rembg when it is installed with a local model), crop,
recenter and pad to a square with a margin on the background colour training used (black, as the
prepared views)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from gen3d.errors import InputError

MIN_SIDE = 32  # image_too_small below this many pixels on the short side
U2NET_MODEL = Path.home() / ".u2net" / "u2net.onnx"  # where rembg keeps its model


@dataclass
class Prepared:
    image: np.ndarray  # (S, S, 3) float32 in [0, 1], object centred on the background
    mask: np.ndarray  # (S, S) float32 coverage
    foreground: str  # "alpha", "rembg" or "border-estimate"
    aspect: float = 1.0  # width / height of the foreground's bounding box in the input's own pixels
    outline: np.ndarray | None = None  # (M, M) float32 coverage cropped the same way at `outline_size`, if asked


def to_rgba(image: Image.Image) -> np.ndarray:
    """(H, W, 4) float32 in [0, 1] from palette, greyscale, 16-bit, CMYK, RGB(A) images."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.float64)
        grey = grey / (65535.0 if grey.max() > 255 else 255.0)
        rgb = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
        return np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1).astype(np.float32)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode == "LA" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode != "RGBA":
        image = image.convert("RGB").convert("RGBA")  # CMYK, L, P, F ... through RGB
    return np.asarray(image, dtype=np.float32) / 255.0


def foreground_mask(rgba: np.ndarray, *, threshold: float = 0.08) -> tuple[np.ndarray, str]:
    """(H, W) coverage in [0, 1] and how it was found. Alpha when the image has transparency; else rembg
    (only if installed and its model is already on disk); else pixels whose colour differs from the
    median border colour by more than `threshold`, largest component, holes filled."""
    alpha = rgba[..., 3]
    if alpha.min() < 0.999:
        return alpha, "alpha"
    mask = _rembg_mask(rgba)
    if mask is not None:
        return mask, "rembg"
    border = np.concatenate([rgba[0, :, :3], rgba[-1, :, :3], rgba[:, 0, :3], rgba[:, -1, :3]])  # (K, 3)
    distance = np.abs(rgba[..., :3] - np.median(border, axis=0)).max(axis=-1)  # (H, W)
    labels, count = ndimage.label(distance > threshold)
    if count == 0:
        return np.zeros(alpha.shape, np.float32), "border-estimate"
    sizes = ndimage.sum(np.ones_like(distance), labels, index=np.arange(1, count + 1))
    keep = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    return keep.astype(np.float32), "border-estimate"


def _rembg_mask(rgba: np.ndarray) -> np.ndarray | None:
    import importlib.util

    if importlib.util.find_spec("rembg") is None or not U2NET_MODEL.is_file():
        return None
    from rembg import remove

    out = remove(Image.fromarray((rgba[..., :3] * 255).astype(np.uint8)))
    return np.asarray(out, dtype=np.float32)[..., 3] / 255.0


def prepare_image(image: Image.Image, size: int = 224, *, margin: float = 0.1, background: float = 0.0,
                  name: str = "image", mask: np.ndarray | None = None, outline_size: int | None = None) -> Prepared:
    """Crop to the foreground, centre it, pad to a square whose side is the object's longest side over
    (1 - 2 margin), resize to `size`, composite on `background`. A known (H, W) coverage `mask` in
    [0, 1] (rendered views) replaces the foreground estimate. `outline_size`: also the coverage cropped
    the same way at that size (from the same foreground estimate, which runs once)."""
    if min(image.size) < MIN_SIDE:
        raise InputError("image_too_small", f"{name}: {image.width}x{image.height}, need >= {MIN_SIDE} px per side")
    rgba = to_rgba(image)
    mask, how = (np.asarray(mask, np.float32), "given") if mask is not None else foreground_mask(rgba)
    rows, cols = np.nonzero(mask > 0.5)
    if len(rows) == 0:
        raise InputError("image_unreadable", f"{name}: no foreground object found")
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = int(np.ceil(max(bottom - top, right - left) / (1 - 2 * margin)))
    canvas = np.zeros((side, side, 4), np.float32)
    oy, ox = (side - (bottom - top)) // 2, (side - (right - left)) // 2
    canvas[oy: oy + bottom - top, ox: ox + right - left, :3] = rgba[top:bottom, left:right, :3]
    canvas[oy: oy + bottom - top, ox: ox + right - left, 3] = mask[top:bottom, left:right]
    square = Image.fromarray((canvas * 255).round().astype(np.uint8), "RGBA")
    resized = np.asarray(square.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    coverage = resized[..., 3:]
    rgb = resized[..., :3] * coverage + background * (1 - coverage)
    outline = None
    if outline_size is not None:
        outline = np.asarray(square.resize((outline_size, outline_size), Image.Resampling.LANCZOS),
                             dtype=np.float32)[..., 3] / 255.0  # (M, M)
    return Prepared(image=rgb.astype(np.float32), mask=coverage[..., 0], foreground=how,
                    aspect=(right - left) / (bottom - top), outline=outline)
