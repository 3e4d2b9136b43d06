"""Mesh loading: any of OBJ(+MTL), PLY, STL, OFF, GLB/glTF into one `Mesh`, with reason codes."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import trimesh

from gen3d.errors import InputError, MeshWarning
from gen3d.geometry.validate import validate_geometry
from gen3d.types import Material, Mesh

log = logging.getLogger(__name__)

READ_FORMATS = {".obj": "obj", ".ply": "ply", ".stl": "stl", ".off": "off", ".glb": "glb", ".gltf": "gltf"}
DEFAULT_MAX_FACES = 10_000_000


def load_mesh(path: str | Path, *, max_faces: int = DEFAULT_MAX_FACES) -> Mesh:
    """Load, flatten and validate a mesh file; raise InputError with a CONVENTIONS reason code.

    Scenes are flattened with their node transforms into one mesh (per-face material ids keep
    the parts' materials apart); polygons are triangulated. Recoverable defects are kept in
    `mesh.warnings` (codes such as `malformed_face_skipped`, `nonfinite_colors_dropped`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("missing_file", f"no such file: {path}")
    file_type = READ_FORMATS.get(path.suffix.lower())
    if file_type is None:
        known = ", ".join(sorted(READ_FORMATS))
        raise InputError("unsupported_format", f"{path.name}: extension '{path.suffix}' is not one of {known}")
    if path.stat().st_size == 0:
        raise InputError("empty", f"{path.name}: the file is empty")

    scan = scan_obj(path, max_faces=max_faces) if file_type == "obj" else ObjScan()
    warnings = list(scan.warnings)
    drop_colors = scan.nonfinite_colors
    try:
        with open(path, "rb") as stream:
            loaded = trimesh.load(
                stream, file_type=file_type, process=False, resolver=trimesh.resolvers.FilePathResolver(path)
            )
    except InputError:
        raise
    except Exception as exc:  # trimesh raises many types for corrupt files; all mean "unreadable"
        raise InputError("unreadable", f"{path.name}: could not be parsed as {file_type} ({exc})") from exc

    mesh = _from_trimesh(loaded, path.name)
    if drop_colors:
        mesh.colors = None
    if file_type == "obj" and not scan.names_texture:
        # trimesh gives UV-mapped OBJs without a texture a 2x2 placeholder image; it is not a texture.
        for material in mesh.materials:
            material.texture = None
    if file_type == "obj" and not scan.has_material_library:
        # ... and a grey placeholder material to OBJs that name no .mtl: the file says nothing of colour.
        mesh.materials = [Material() for _ in mesh.materials]
    mesh.warnings = warnings + mesh.warnings
    validate_geometry(mesh, name=path.name, max_faces=max_faces)
    for w in mesh.warnings:
        log.warning("%s: %s", path.name, w)
    return mesh


class ObjScan:
    """What a line-level read of an OBJ finds that trimesh would silently repair or hide."""

    def __init__(self) -> None:
        self.warnings: list[MeshWarning] = []
        self.nonfinite_colors = False
        self.names_texture = False  # an existing .mtl names a diffuse map
        self.has_material_library = False  # an existing .mtl is referenced


def scan_obj(path: Path, *, max_faces: int = DEFAULT_MAX_FACES) -> ObjScan:
    """Check an OBJ's face lines and vertex colours before trimesh parses it.

    Rejects out-of-range indices and non-finite positions; warns about face lines with fewer
    than three corners, non-finite vertex colours and missing .mtl / texture files.
    """
    scan = ObjScan()
    num_vertices = num_faces = 0
    malformed: list[int] = []
    text = path.read_bytes().decode("utf-8", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        head = tokens[0]
        if head == "v":
            values = _floats(tokens[1:])
            if values is None:
                raise InputError("unreadable", f"{path.name} line {line_no}: malformed vertex '{line.strip()}'")
            if len(values) < 3 or not all(math.isfinite(x) for x in values[:3]):
                raise InputError("nonfinite_vertices", f"{path.name} line {line_no}: vertex is not 3 finite numbers")
            if len(values) >= 6 and not all(math.isfinite(x) for x in values[3:]):
                scan.nonfinite_colors = True
            num_vertices += 1
        elif head == "f":
            corners = tokens[1:]
            if len(corners) < 3:
                malformed.append(line_no)
                continue
            for corner in corners:
                index = _int(corner.split("/")[0])
                if index is None:
                    raise InputError("unreadable", f"{path.name} line {line_no}: malformed face '{line.strip()}'")
                resolved = index - 1 if index > 0 else num_vertices + index
                if index == 0 or not 0 <= resolved < num_vertices:
                    raise InputError(
                        "index_out_of_range",
                        f"{path.name} line {line_no}: face index {index} with {num_vertices} vertices defined",
                    )
            num_faces += len(corners) - 2
            if num_faces > max_faces:
                raise InputError("too_many_faces", f"{path.name}: more than {max_faces} faces")
        elif head == "mtllib":
            mtl_name = line.strip()[len("mtllib") :].strip()
            mtl = path.parent / mtl_name
            if not mtl.is_file():
                scan.warnings.append(MeshWarning("material_missing", f"material library '{mtl_name}' not found"))
            else:
                scan.has_material_library = True
                missing, named = _mtl_textures(mtl)
                scan.warnings += missing
                scan.names_texture |= named
    if malformed:
        shown = ", ".join(str(n) for n in malformed[:5])
        message = f"{len(malformed)} face line(s) with < 3 corners skipped (line {shown})"
        scan.warnings.append(MeshWarning("malformed_face_skipped", message))
    if scan.nonfinite_colors:
        scan.warnings.append(MeshWarning("nonfinite_colors_dropped", "non-finite vertex colour(s): colours dropped"))
    return scan


def _mtl_textures(mtl: Path) -> tuple[list[MeshWarning], bool]:
    """Warnings for diffuse maps that a .mtl names but that do not exist, and whether it names any."""
    found = []
    named = False
    for line in mtl.read_bytes().decode("utf-8", errors="replace").splitlines():
        tokens = line.split(maxsplit=1)
        if len(tokens) == 2 and tokens[0].lower() in ("map_kd", "map_ka"):
            named = True
            # The file name may contain spaces ("fuze uv.jpg") or follow options ("-s 1 1 1 a.png").
            name = tokens[1].strip()
            candidates = (name, name.split()[-1])
            if not any((mtl.parent / c).is_file() for c in candidates):
                found.append(MeshWarning("texture_missing", f"texture '{name}' named in {mtl.name} not found"))
    return found, named


def _floats(tokens: list[str]) -> list[float] | None:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        return None


def _int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def _from_trimesh(loaded: trimesh.Trimesh | trimesh.Scene | trimesh.PointCloud, name: str) -> Mesh:
    """Flatten a trimesh object (a scene with node transforms, or one mesh) into one Mesh."""
    if isinstance(loaded, trimesh.Scene):
        parts = []
        for node in loaded.graph.nodes_geometry:
            transform, geometry_name = loaded.graph[node]
            geometry = loaded.geometry[geometry_name]
            if isinstance(geometry, trimesh.Trimesh):
                parts.append((geometry, np.asarray(transform, dtype=np.float64)))
    elif isinstance(loaded, trimesh.Trimesh):
        parts = [(loaded, np.eye(4))]
    else:
        parts = []
    if not parts:
        points = loaded.vertices if isinstance(loaded, trimesh.PointCloud) else []
        if len(points):
            raise InputError("no_faces", f"{name}: {len(points)} vertices but no faces")
        raise InputError("empty", f"{name}: no geometry in the file")
    return concatenate([_part_to_mesh(geometry, transform) for geometry, transform in parts])


def _part_to_mesh(geometry: trimesh.Trimesh, transform: np.ndarray) -> Mesh:
    vertices = np.asarray(geometry.vertices, dtype=np.float64)
    vertices = vertices @ transform[:3, :3].T + transform[:3, 3]  # (V, 3)
    normals = None
    if "vertex_normals" in geometry._cache:  # normals that came with the file, not computed ones
        raw = np.asarray(geometry.vertex_normals, dtype=np.float64)
        if raw.shape == vertices.shape and np.isfinite(raw).all():
            normal_matrix = np.linalg.inv(transform[:3, :3]).T
            normals = raw @ normal_matrix.T
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            normals = normals.astype(np.float32)
    visual = geometry.visual
    uvs = colors = None
    material = Material()
    if isinstance(visual, trimesh.visual.TextureVisuals):
        if visual.uv is not None and len(visual.uv) == len(vertices):
            uvs = np.asarray(visual.uv, dtype=np.float32)
        material = _material(visual.material)
    elif visual.kind == "vertex":
        colors = np.asarray(visual.vertex_colors, dtype=np.float32) / 255.0
    mesh = Mesh(vertices=vertices, faces=np.asarray(geometry.faces), normals=normals, uvs=uvs, colors=colors)
    mesh.materials = [material]
    mesh.face_materials = np.zeros(mesh.num_faces, dtype=np.int32)
    if np.linalg.det(transform[:3, :3]) < 0:  # a mirroring node transform flips the winding
        mesh.faces = mesh.faces[:, ::-1].copy()
    return mesh


def _material(source) -> Material:
    """Base colour factor and texture of a trimesh Simple- or PBRMaterial."""
    if source is None:
        return Material()
    name = str(getattr(source, "name", None) or "material")
    image = factor = None
    if isinstance(source, trimesh.visual.material.PBRMaterial):
        image = source.baseColorTexture
        factor = source.baseColorFactor
    else:
        image = getattr(source, "image", None)
        factor = getattr(source, "diffuse", None)
    base_color = np.ones(4, dtype=np.float32)
    if factor is not None:
        factor = np.asarray(factor, dtype=np.float32).reshape(-1)
        base_color[: len(factor)] = factor / 255.0 if factor.max() > 1.0 or factor.dtype == np.uint8 else factor
    texture = None
    if image is not None:
        texture = np.asarray(image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image, dtype=np.uint8)
    return Material(name=name, base_color=base_color, texture=texture)


def concatenate(meshes: list[Mesh]) -> Mesh:
    """One Mesh from several, keeping materials apart; attributes missing in a part get defaults."""
    if len(meshes) == 1:
        return meshes[0]
    offsets = np.cumsum([0] + [m.num_vertices for m in meshes[:-1]])
    material_offsets = np.cumsum([0] + [max(len(m.materials), 1) for m in meshes[:-1]])

    def gather(attr: str, width: int, default: float) -> np.ndarray | None:
        if all(getattr(m, attr) is None for m in meshes):
            return None
        blocks = [
            getattr(m, attr) if getattr(m, attr) is not None else np.full((m.num_vertices, width), default, np.float32)
            for m in meshes
        ]
        return np.concatenate(blocks).astype(np.float32)

    normals = None if any(m.normals is None for m in meshes) else np.concatenate([m.normals for m in meshes])
    materials: list[Material] = []
    face_materials = []
    for m, offset in zip(meshes, material_offsets):
        materials += m.materials or [Material()]
        ids = m.face_materials if m.face_materials is not None else np.zeros(m.num_faces, np.int32)
        face_materials.append(ids + offset)
    return Mesh(
        vertices=np.concatenate([m.vertices for m in meshes]),
        faces=np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
        normals=normals,
        uvs=gather("uvs", 2, 0.0),
        colors=gather("colors", 4, 1.0),
        face_materials=np.concatenate(face_materials).astype(np.int32),
        materials=materials,
        warnings=[w for m in meshes for w in m.warnings],
    )
