"""Image file reading with reason codes (CONVENTIONS: image_unreadable, image_too_large)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gen3d.errors import InputError

MAX_PIXELS = 64_000_000  # decompression-bomb guard


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image fully (EXIF orientation applied); InputError with a reason code on failure."""
    from PIL import ImageOps

    path = Path(path)
    if not path.is_file():
        raise InputError("missing_file", f"no such file: {path}")
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                size = f"{image.width}x{image.height}"
                raise InputError("image_too_large", f"{path.name}: {size} exceeds {max_pixels} pixels")
            image.load()
            return ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InputError("image_unreadable", f"{path.name}: not a readable image ({exc})") from exc
