"""Hand-off types between stages: meshes and their materials."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gen3d.errors import MeshWarning


@dataclass
class Material:
    """A base-colour material: a constant RGBA factor in [0, 1], optionally times a texture."""

    name: str = "default"
    base_color: np.ndarray = field(default_factory=lambda: np.ones(4, dtype=np.float32))  # (4,) RGBA
    texture: np.ndarray | None = None  # (H, W, 3|4) uint8, row 0 = top of the image (v = 1)

    @property
    def has_texture(self) -> bool:
        return self.texture is not None


@dataclass
class Mesh:
    """A triangle mesh with optional per-vertex normals, UVs and colours, and per-face materials.

    Attributes are per vertex, so a vertex on a UV seam appears once per side of the seam;
    topology questions (components, watertightness) are answered on a copy welded by position
    (see `gen3d.geometry.topology`).
    """

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    normals: np.ndarray | None = None  # (V, 3) float32, unit length
    uvs: np.ndarray | None = None  # (V, 2) float32, v = 0 at the bottom of the texture
    colors: np.ndarray | None = None  # (V, 4) float32 RGBA in [0, 1]
    face_materials: np.ndarray | None = None  # (F,) int32 index into `materials`
    materials: list[Material] = field(default_factory=list)
    warnings: list[MeshWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def has_texture(self) -> bool:
        return self.uvs is not None and any(m.has_texture for m in self.materials)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) axis-aligned bounding box of the referenced vertices."""
        used = self.vertices[np.unique(self.faces)] if self.num_faces else self.vertices
        return np.stack([used.min(axis=0), used.max(axis=0)])

    def face_normals(self) -> np.ndarray:
        """(F, 3) unit face normals (zero for degenerate faces), by the right-hand rule."""
        tri = self.vertices[self.faces]  # (F, 3, 3)
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3)
        norm = np.linalg.norm(cross, axis=1, keepdims=True)
        return np.divide(cross, norm, out=np.zeros_like(cross), where=norm > 0)

    def face_areas(self) -> np.ndarray:
        """(F,) triangle areas."""
        tri = self.vertices[self.faces]  # (F, 3, 3)
        return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)

    def copy(self, **changes) -> Mesh:
        """A deep copy, with `changes` (field=value) applied."""
        fields = dict(
            vertices=self.vertices.copy(),
            faces=self.faces.copy(),
            normals=None if self.normals is None else self.normals.copy(),
            uvs=None if self.uvs is None else self.uvs.copy(),
            colors=None if self.colors is None else self.colors.copy(),
            face_materials=None if self.face_materials is None else self.face_materials.copy(),
            materials=list(self.materials),
            warnings=list(self.warnings),
        )
        fields.update(changes)
        return replace(self, **fields)

    def submesh(self, face_mask: np.ndarray) -> Mesh:
        """The faces selected by `face_mask` (bool (F,) or indices), with unused vertices dropped."""
        faces = self.faces[face_mask]  # (F', 3)
        used, inverse = np.unique(faces, return_inverse=True)
        pick = lambda a: None if a is None else a[used]  # noqa: E731
        return Mesh(
            vertices=self.vertices[used],
            faces=inverse.reshape(-1, 3),
            normals=pick(self.normals),
            uvs=pick(self.uvs),
            colors=pick(self.colors),
            face_materials=None if self.face_materials is None else self.face_materials[face_mask],
            materials=list(self.materials),
            warnings=list(self.warnings),
        )
