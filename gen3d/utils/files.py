"""Atomic file writes (CONVENTIONS: write to a temporary name, rename when complete)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, content: bytes | Callable[[BinaryIO], object]) -> Path:
    """Write `content` (bytes, or a function writing to a binary stream) to `path` via a hidden
    temporary file in the same folder, renamed over `path` only once it is complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as stream:
            if isinstance(content, bytes | bytearray):
                stream.write(content)
            else:
                content(stream)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
