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


# Warning codes: the input loaded (or the operation finished) despite the defect.
WARNING_CODES = (
    "malformed_face_skipped",  # an OBJ face line with fewer than three corners
    "nonfinite_colors_dropped",  # NaN/inf vertex colours: all colours dropped
    "material_missing",  # the .mtl an OBJ names does not exist
    "texture_missing",  # a texture a .mtl names does not exist
    "texture_dropped",  # an operation (decimation) could not keep the UV texture
    "decimation_clustered",  # quadric decimation stalled above the face budget: vertex clustering used
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


class FaceBudgetError(ValueError):
    """A face budget the decimation cannot reach for this mesh (a usage error: ask for more faces)."""
