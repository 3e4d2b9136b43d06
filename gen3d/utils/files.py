"""Atomic file writes (CONVENTIONS: write to a temporary name, rename when complete) and our own
format-tagged .npz files, read without pickle."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from gen3d.errors import InputError


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


def open_tagged_npz(path: str | Path, fmt: str, what: str):
    """The open NpzFile at `path` (use it in a `with`) when its `format` array is `fmt`; InputError
    `unreadable` naming `what` otherwise (not a file numpy reads, one array, another format)."""
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError("unreadable", f"{path}: not a {what} ({exc})") from exc
    if not isinstance(stored, np.lib.npyio.NpzFile):
        raise InputError("unreadable", f"{path}: not a {what} (one array, not an .npz)")
    found = str(stored["format"]) if "format" in stored.files else None
    if found != fmt:
        stored.close()
        raise InputError("unreadable", f"{path}: not a {what} (format {found!r}, this gen3d reads {fmt!r})")
    return stored
