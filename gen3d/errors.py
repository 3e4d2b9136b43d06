"""Error and warning types that carry the CONVENTIONS reason codes."""

from __future__ import annotations

from dataclasses import dataclass

# Input reason codes shared by `info`, `convert`, `data prepare` and `generate` (CONVENTIONS.md).
INPUT_REASONS = (
    "missing_file",
    "unreadable",
    "unsupported_format",
    "empty",
    "no_faces",
    "nonfinite_vertices",
    "index_out_of_range",
    "degenerate_only",
    "too_many_faces",
    "image_unreadable",
    "image_too_large",
    "image_too_small",
)


class InputError(ValueError):
    """Bad input from the user: exit code 2 with `reason` (a CONVENTIONS code) and a one-line message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class MeshWarning:
    """A recoverable defect: the input was loaded (or an operation completed) despite it."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
