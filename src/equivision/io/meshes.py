"""Triangle meshes: a plain ``Mesh(vertices, faces)`` tuple, read and written through trimesh."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from equivision.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    DegenerateGeometryError,
    InvalidInputError,
    ShapeError,
    UnsupportedFormatError,
)
from equivision.io.atomic import atomic_path

MESH_FORMATS = (".ply", ".obj", ".off", ".stl", ".glb")


class Mesh(NamedTuple):
    """A triangle mesh: ``vertices`` ``(V, 3)`` float, ``faces`` ``(F, 3)`` int64 indices."""

    vertices: Tensor
    faces: Tensor

    def to_trimesh(self):  # -> trimesh.Trimesh (imported lazily: trimesh is slow to import)
        import trimesh

        return trimesh.Trimesh(
            self.vertices.detach().cpu().double().numpy(), self.faces.detach().cpu().numpy(), process=False
        )

    @staticmethod
    def from_trimesh(tm, dtype: torch.dtype = torch.float32) -> Mesh:
        return Mesh(
            torch.as_tensor(np.asarray(tm.vertices), dtype=dtype),
            torch.as_tensor(np.asarray(tm.faces), dtype=torch.long),
        )


def validate_mesh(mesh: Mesh, name: str = "mesh") -> Mesh:
    """Check shapes, dtypes, finiteness, index range and that faces exist; return the mesh."""
    v, f = mesh
    if not isinstance(v, Tensor) or not isinstance(f, Tensor):
        raise InvalidInputError(f"{name} vertices and faces must be tensors")
    if v.ndim != 2 or v.shape[1] != 3:
        raise ShapeError(f"{name} vertices must have shape (V, 3), got {tuple(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ShapeError(f"{name} faces must have shape (F, 3) (triangles), got {tuple(f.shape)}")
    if not v.is_floating_point():
        raise InvalidInputError(f"{name} vertices must be floating point, got {v.dtype}")
    if f.is_floating_point():
        raise InvalidInputError(f"{name} faces must be integer indices, got {f.dtype}")
    if v.shape[0] == 0:
        raise DegenerateGeometryError(f"{name} has no vertices")
    if f.shape[0] == 0:
        raise DegenerateGeometryError(f"{name} has no faces (a point cloud? use load_point_cloud)")
    if not bool(torch.isfinite(v).all()):
        raise InvalidInputError(f"{name} has NaN or infinite vertex coordinates")
    if int(f.min()) < 0 or int(f.max()) >= v.shape[0]:
        raise InvalidInputError(f"{name} faces index vertices outside 0..{v.shape[0] - 1}")
    return mesh


def check_readable(path: str | os.PathLike[str], formats: tuple[str, ...], what: str) -> Path:
    """``path`` as a Path to an existing file with a suffix in ``formats`` (``what``: the
    kind of file, for messages); DataFileNotFoundError or UnsupportedFormatError otherwise."""
    p = Path(path)
    if not p.exists():
        raise DataFileNotFoundError(f"{what} file {p} does not exist")
    if p.is_dir():
        raise DataFileNotFoundError(f"{p} is a folder, not a {what} file")
    if p.suffix.lower() not in formats:
        raise UnsupportedFormatError(
            f"cannot read {what} from '{p.suffix or p.name}' files; use one of {', '.join(formats)}"
        )
    return p


_OBJ_ZERO_INDEX = re.compile(rb"^[ \t]*f[ \t].*?(?<![\w.+-])0(?:/|[ \t]|\r?$)", re.MULTILINE)


def _precheck_mesh_file(p: Path) -> None:
    """Refuse what trimesh would misread or report confusingly: a binary STL whose triangle
    count does not match its size (trimesh then retries it as text), and OBJ faces with
    index 0 (OBJ counts from 1; trimesh would silently wrap 0 to the last vertex)."""
    suffix = p.suffix.lower()
    if suffix == ".stl":
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(84)
        if head.lstrip()[:5].lower() == b"solid":
            return  # ASCII STL, or a binary one whose comment starts with 'solid': trimesh tells
        if size < 84:
            raise CorruptFileError(f"{p}: binary STL is truncated ({size} bytes, the header alone is 84)")
        count = int.from_bytes(head[80:84], "little")
        if 84 + 50 * count != size:
            raise CorruptFileError(f"{p}: binary STL header claims {count} triangles "
                                   f"({84 + 50 * count} bytes) but the file has {size} bytes")
    elif suffix == ".obj":
        with open(p, "rb") as f:
            text = f.read()
        m = _OBJ_ZERO_INDEX.search(text)
        if m is not None:
            line = text[: m.start()].count(b"\n") + 1
            raise CorruptFileError(f"{p}: line {line}: OBJ face index 0 (indices start at 1)")


def load_mesh(path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32) -> Mesh:
    """Read a triangle mesh (PLY, OBJ, OFF, STL, GLB). Multi-part scenes are concatenated;
    polygons are triangulated. Raises a typed error for missing, corrupt or empty files."""
    import trimesh

    p = check_readable(path, MESH_FORMATS, "mesh")
    _precheck_mesh_file(p)
    try:
        tm = trimesh.load(p, process=False)
        if isinstance(tm, trimesh.Scene):  # multi-part files (GLB, OBJ groups): one mesh
            tm = trimesh.load(p, force="mesh", process=False)
    except Exception as e:  # trimesh raises many unrelated types on bad input
        raise CorruptFileError(f"cannot parse {p} as a mesh: {type(e).__name__}: {e}") from e
    if isinstance(tm, trimesh.PointCloud):
        if len(tm.vertices) == 0:
            raise DegenerateGeometryError(f"{p} holds an empty mesh (no vertices)")
        raise DegenerateGeometryError(f"{p} has no faces; read it with load_point_cloud instead")
    if not isinstance(tm, trimesh.Trimesh):
        raise CorruptFileError(f"{p} holds no triangle mesh")
    if len(tm.vertices) == 0:
        raise DegenerateGeometryError(f"{p} holds an empty mesh (no vertices)")
    if len(tm.faces) == 0:
        raise DegenerateGeometryError(f"{p} has no faces; read it with load_point_cloud instead")
    mesh = Mesh.from_trimesh(tm, dtype)
    try:
        return validate_mesh(mesh, str(p))
    except InvalidInputError as e:
        raise CorruptFileError(str(e)) from e


def save_mesh(mesh: Mesh, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a mesh atomically (format from the extension). Refuses to replace an existing
    file unless ``overwrite``."""
    validate_mesh(mesh)
    p = Path(path)
    if p.suffix.lower() not in MESH_FORMATS:
        raise UnsupportedFormatError(f"cannot write meshes as '{p.suffix}'; use one of {MESH_FORMATS}")
    if p.suffix.lower() == ".ply" and mesh.vertices.dtype == torch.float64:
        # trimesh writes PLY vertices as float32; far from the origin that moves them
        with atomic_path(p, overwrite=overwrite) as tmp:
            _write_ply_float64(mesh, tmp)
        return p
    tm = mesh.to_trimesh()
    with atomic_path(p, overwrite=overwrite) as tmp:
        tm.export(tmp, file_type=p.suffix.lower().lstrip("."))
    return p


def _write_ply_float64(mesh: Mesh, path: str | os.PathLike[str]) -> None:
    """Binary little-endian PLY with ``double`` vertices and ``int`` triangle lists."""
    v = mesh.vertices.detach().cpu().double().numpy()
    f = mesh.faces.detach().cpu().numpy()
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by equivision\n"
        f"element vertex {len(v)}\nproperty double x\nproperty double y\nproperty double z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    faces = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    faces["n"], faces["idx"] = 3, f
    with open(path, "wb") as out:
        out.write(header.encode("ascii"))
        out.write(v.astype("<f8").tobytes())
        out.write(faces.tobytes())
