"""Mesh writers keyed by extension (GLB, OBJ+MTL+PNG, PLY, STL), all written atomically."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

import gen3d
from gen3d.types import Material, Mesh
from gen3d.utils.files import atomic_write

if TYPE_CHECKING:
    import trimesh

# trimesh is imported where a writer needs it: importing it takes about 1 s, a tenth of the main
# command's time, and a geometry-only GLB (what `gen3d generate` writes) is written without it.


def _visual(part: Mesh, material: Material, pbr: bool) -> trimesh.visual.base.Visuals | None:
    import trimesh

    if part.uvs is not None and material.texture is not None:
        image = Image.fromarray(material.texture)
        if pbr:
            trimesh_material = trimesh.visual.material.PBRMaterial(
                name=material.name, baseColorTexture=image,
                baseColorFactor=(np.clip(material.base_color, 0, 1) * 255).astype(np.uint8),
            )
        else:
            trimesh_material = trimesh.visual.material.SimpleMaterial(
                name=material.name, image=image, diffuse=(np.clip(material.base_color, 0, 1) * 255).astype(np.uint8)
            )
        return trimesh.visual.TextureVisuals(uv=part.uvs, material=trimesh_material)
    if part.colors is not None:
        return trimesh.visual.ColorVisuals(vertex_colors=(np.clip(part.colors, 0, 1) * 255).round().astype(np.uint8))
    if not np.allclose(material.base_color, 1.0):
        factor = (np.clip(material.base_color, 0, 1) * 255).astype(np.uint8)
        if pbr:
            trimesh_material = trimesh.visual.material.PBRMaterial(name=material.name, baseColorFactor=factor)
        else:
            trimesh_material = trimesh.visual.material.SimpleMaterial(name=material.name, diffuse=factor)
        return trimesh.visual.TextureVisuals(material=trimesh_material)
    return None


def to_trimesh_parts(mesh: Mesh, pbr: bool = True) -> list[trimesh.Trimesh]:
    """One trimesh per material used, each carrying its texture, colours or colour factor."""
    import trimesh

    ids = mesh.face_materials if mesh.face_materials is not None else np.zeros(mesh.num_faces, np.int32)
    materials = mesh.materials or [Material()]
    parts = []
    for material_id in np.unique(ids):
        part = mesh.submesh(ids == material_id) if len(np.unique(ids)) > 1 else mesh
        visual = _visual(part, materials[int(material_id)], pbr)
        parts.append(
            trimesh.Trimesh(
                vertices=part.vertices, faces=part.faces, vertex_normals=part.normals, visual=visual, process=False
            )
        )
    return parts


def _single_trimesh(mesh: Mesh) -> trimesh.Trimesh:
    """One trimesh for formats without separate primitives (trimesh packs several textures into one)."""
    import trimesh

    parts = to_trimesh_parts(mesh, pbr=False)
    return parts[0] if len(parts) == 1 else trimesh.util.concatenate(parts)


def write_glb(mesh: Mesh, path: Path, extras: dict | None = None) -> None:
    """Binary glTF; several materials become several primitives. `extras` goes to asset.extras."""
    if is_geometry_only(mesh):
        atomic_write(path, geometry_glb(mesh, extras))
        return
    import trimesh

    scene = trimesh.Scene()
    for i, part in enumerate(to_trimesh_parts(mesh, pbr=True)):
        scene.add_geometry(part, geom_name=f"part{i}", node_name=f"part{i}")
    data = scene.export(file_type="glb")
    if extras:
        data = glb_with_asset_extras(data, extras)
    atomic_write(path, data)


def is_geometry_only(mesh: Mesh) -> bool:
    """No UVs, colours, textures or non-white materials: nothing but positions and triangles to write."""
    materials = mesh.materials or [Material()]
    return (mesh.uvs is None and mesh.colors is None and not any(m.has_texture for m in materials)
            and all(np.allclose(m.base_color, 1.0) for m in materials))


def geometry_glb(mesh: Mesh, extras: dict | None = None) -> bytes:
    """A geometry-only binary glTF 2.0 (one node, one primitive: uint32 indices and float32 POSITION
    with its bounds, as trimesh writes such a mesh), `extras` in asset.extras."""
    indices = np.ascontiguousarray(mesh.faces, dtype="<u4").tobytes()  # (F * 3,) uint32
    positions = np.ascontiguousarray(mesh.vertices, dtype="<f4")  # (V, 3) float32
    document = {
        "asset": {"version": "2.0", "generator": f"gen3d {gen3d.__version__}"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"name": "part0", "mesh": 0}],
        "meshes": [{"name": "part0", "primitives": [{"attributes": {"POSITION": 1}, "indices": 0, "mode": 4}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5125, "count": 3 * mesh.num_faces, "type": "SCALAR"},
            {"bufferView": 1, "componentType": 5126, "count": mesh.num_vertices, "type": "VEC3",
             "min": positions.min(0).tolist() if len(positions) else [0.0] * 3,
             "max": positions.max(0).tolist() if len(positions) else [0.0] * 3},
        ],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(indices), "target": 34963},
                        {"buffer": 0, "byteOffset": len(indices), "byteLength": positions.nbytes, "target": 34962}],
        "buffers": [{"byteLength": len(indices) + positions.nbytes}],
    }
    if extras:
        document["asset"]["extras"] = json.loads(json.dumps(extras))
    binary = indices + positions.tobytes()  # both multiples of 4 bytes, as chunks must be
    return _glb_container(document, struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def glb_with_asset_extras(data: bytes, extras: dict) -> bytes:
    """Rewrite a GLB's JSON chunk so that `asset.extras` holds `extras` (CONVENTIONS: generation metadata)."""
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or json_type != b"JSON":
        raise ValueError("not a binary glTF")
    document = json.loads(data[20 : 20 + json_length])
    document.setdefault("asset", {"version": "2.0"})["extras"] = json.loads(json.dumps(extras))
    return _glb_container(document, data[20 + json_length :], version)  # the BIN chunk unchanged


def _glb_container(document: dict, chunks_after_json: bytes, version: int = 2) -> bytes:
    """The GLB bytes: 12-byte header, the JSON chunk (padded with spaces to 4 bytes), then the given chunks."""
    text = json.dumps(document, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + chunks_after_json
    return struct.pack("<4sII", b"glTF", version, 12 + len(body)) + body


def write_obj(mesh: Mesh, path: Path, extras: dict | None = None) -> None:
    """Wavefront OBJ with a sibling .mtl and texture PNGs when the mesh has materials."""
    import trimesh

    combined = _single_trimesh(mesh)
    mtl_name = path.stem + ".mtl"
    text, files = trimesh.exchange.obj.export_obj(
        combined, include_normals=mesh.normals is not None, include_color=mesh.colors is not None,
        include_texture=True, return_texture=True, mtl_name=mtl_name,
    )
    # trimesh names images after materials; prefix them with the stem so that several meshes
    # written to one folder do not overwrite each other's textures.
    renames = {name: f"{path.stem}_{name}" for name in files if name != mtl_name}
    for name, data in files.items():  # the .mtl and its images, before the .obj that names them
        if name == mtl_name:
            mtl_text = data.decode("utf-8")
            for old, new in renames.items():
                mtl_text = mtl_text.replace(f" {old}", f" {new}")
            data = mtl_text.encode("utf-8")
        atomic_write(path.parent / renames.get(name, name), data)
    atomic_write(path, text.encode("utf-8"))


def write_ply(mesh: Mesh, path: Path, extras: dict | None = None) -> None:
    """Binary PLY with vertex colours when present."""
    import trimesh

    combined = _single_trimesh(mesh)
    if mesh.colors is None:
        combined.visual = trimesh.visual.ColorVisuals()
    atomic_write(path, trimesh.exchange.ply.export_ply(combined, encoding="binary"))


def write_stl(mesh: Mesh, path: Path, extras: dict | None = None) -> None:
    """Binary STL (geometry only)."""
    import trimesh

    plain = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)
    atomic_write(path, trimesh.exchange.stl.export_stl(plain))


# Extension -> writer (a plain dict, per CONVENTIONS "Choices by name").
WRITERS: dict[str, Callable[[Mesh, Path, dict | None], None]] = {
    ".glb": write_glb,
    ".obj": write_obj,
    ".ply": write_ply,
    ".stl": write_stl,
}


def save_mesh(mesh: Mesh, path: str | Path, extras: dict | None = None) -> Path:
    """Write `mesh` in the format its extension names; raise ValueError for an unknown one."""
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise ValueError(f"cannot write '{path.suffix}': choose one of {', '.join(WRITERS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(mesh, path, extras)
    return path
