"""Point clouds: ``(N, 3)`` points and optional ``(N, 3)`` normals, in PLY, XYZ or NPY.

PLY is parsed here (ASCII and binary, the ``vertex`` element's ``x y z [nx ny nz]``), so a
mesh PLY can also be read as the cloud of its vertices. XYZ is whitespace-separated text
with 3 (points) or 6 (points, normals) columns; NPY holds an ``(N, 3)`` or ``(N, 6)`` array.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import (
    CorruptFileError,
    DegenerateGeometryError,
    InvalidInputError,
    ShapeError,
    UnsupportedFormatError,
)
from equivision.io.atomic import atomic_path
from equivision.io.meshes import check_readable

CLOUD_FORMATS = (".ply", ".xyz", ".npy")

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def _parse_ply_header(f) -> tuple[str, list[tuple[str, int, list[tuple[str, str | None, str]]]]]:
    if f.readline().strip() != b"ply":
        raise CorruptFileError("not a PLY file (missing 'ply' magic)")
    fmt = ""
    elements: list[tuple[str, int, list[tuple[str, str | None, str]]]] = []
    while True:
        line = f.readline()
        if not line:
            raise CorruptFileError("PLY header has no 'end_header'")
        words = line.decode("ascii", "replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise CorruptFileError("PLY property before any element")
            if words[1] == "list":
                elements[-1][2].append((words[4], words[2], words[3]))
            else:
                elements[-1][2].append((words[2], None, words[1]))
        elif words[0] == "end_header":
            return fmt, elements


def _read_ply(p: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with open(p, "rb") as f:
        try:
            fmt, elements = _parse_ply_header(f)
        except (ValueError, IndexError) as e:
            raise CorruptFileError(f"{p}: malformed PLY header ({e})") from e
        names = [e[0] for e in elements]
        if "vertex" not in names:
            raise CorruptFileError(f"{p}: PLY file has no vertex element")
        before = elements[: names.index("vertex")]
        _, n, props = elements[names.index("vertex")]
        # Counts come from the header: check them against the bytes left before reading,
        # so a header claiming 10^12 vertices is refused instead of allocated or looped over.
        left = os.fstat(f.fileno()).st_size - f.tell()
        for name, m, _ in elements[: names.index("vertex") + 1]:
            if m < 0 or m > left:
                raise CorruptFileError(f"{p}: PLY header claims {m} '{name}' entries but only "
                                       f"{left} bytes follow it")
        if any(pr[1] is not None for pr in props):
            raise UnsupportedFormatError(f"{p}: list properties on vertices are not supported")
        for need in "xyz":
            if need not in [pr[0] for pr in props]:
                raise CorruptFileError(f"{p}: PLY vertices have no '{need}' property")
        try:
            if fmt == "ascii":
                for _, m, _ in before:
                    for _ in range(m):
                        f.readline()
                rows = [f.readline().split() for _ in range(n)]
                if any(len(r) != len(props) for r in rows):
                    raise CorruptFileError(f"{p}: expected {n} vertex rows of {len(props)} values")
                arr = np.array(rows, dtype=np.float64).reshape(n, len(props))
                if arr.shape != (n, len(props)):
                    raise CorruptFileError(f"{p}: expected {n} vertex rows of {len(props)} values")
                cols = {pr[0]: arr[:, i] for i, pr in enumerate(props)}
            elif fmt in ("binary_little_endian", "binary_big_endian"):
                order = "<" if fmt == "binary_little_endian" else ">"
                for _, m, bprops in before:
                    if any(pr[1] is not None for pr in bprops):
                        raise UnsupportedFormatError(f"{p}: list elements before vertices")
                    f.seek(m * sum(np.dtype(_PLY_TYPES[pr[2]]).itemsize for pr in bprops), 1)
                dt = np.dtype([(pr[0], order + _PLY_TYPES[pr[2]]) for pr in props])
                buf = f.read(dt.itemsize * n)
                if len(buf) < dt.itemsize * n:
                    raise CorruptFileError(
                        f"{p}: PLY file is truncated ({len(buf)} of {dt.itemsize * n} vertex bytes)"
                    )
                data = np.frombuffer(buf, dtype=dt, count=n)
                cols = {name: data[name].astype(np.float64) for name in dt.names}
            else:
                raise CorruptFileError(f"{p}: unknown PLY format '{fmt}'")
        except KeyError as e:
            raise CorruptFileError(f"{p}: unknown PLY property type {e}") from e
        except ValueError as e:
            raise CorruptFileError(f"{p}: cannot parse PLY vertex data ({e})") from e
    pts = np.stack([cols["x"], cols["y"], cols["z"]], 1)
    nrm = np.stack([cols["nx"], cols["ny"], cols["nz"]], 1) if {"nx", "ny", "nz"} <= cols.keys() else None
    return pts, nrm


def load_point_cloud(
    path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor | None]:
    """Read a point cloud. Returns ``(points (N, 3), normals (N, 3) or None)``.

    Raises :class:`~equivision.errors.DegenerateGeometryError` for an empty cloud and
    :class:`~equivision.errors.InvalidInputError` for NaN/inf coordinates.
    """
    p = check_readable(path, CLOUD_FORMATS, "point cloud")
    suffix = p.suffix.lower()
    if suffix == ".ply":
        pts, nrm = _read_ply(p)
    elif suffix == ".xyz":
        if not p.read_text(errors="replace").strip():
            raise DegenerateGeometryError(f"{p} holds no points")
        try:
            arr = np.loadtxt(p, dtype=np.float64, ndmin=2, comments="#")
        except ValueError as e:
            raise CorruptFileError(f"{p}: not a text file of 3 or 6 numbers per line ({e})") from e
        if arr.size == 0:
            raise DegenerateGeometryError(f"{p} holds no points")
        if arr.shape[1] not in (3, 6):
            raise CorruptFileError(f"{p}: expected 3 or 6 columns, found {arr.shape[1]}")
        pts, nrm = arr[:, :3], (arr[:, 3:6] if arr.shape[1] == 6 else None)
    else:
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as e:  # a corrupt header reaches numpy's literal parser: any type
            raise CorruptFileError(f"{p}: not a readable .npy array ({type(e).__name__}: {e})") from e
        if not isinstance(arr, np.ndarray):  # an .npz archive renamed .npy
            raise CorruptFileError(f"{p}: holds an .npz archive, not one .npy array")
        if arr.ndim != 2 or arr.shape[1] not in (3, 6):
            raise CorruptFileError(f"{p}: expected an (N, 3) or (N, 6) array, got {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise CorruptFileError(f"{p}: array of {arr.dtype} is not real numbers")
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)  # torch reads native order only
        pts, nrm = arr[:, :3], (arr[:, 3:6] if arr.shape[1] == 6 else None)
    if len(pts) == 0:
        raise DegenerateGeometryError(f"{p} holds no points")
    if not np.isfinite(pts).all():
        raise InvalidInputError(
            f"{p} has {int((~np.isfinite(pts)).any(1).sum())} points with "
            "NaN or infinite coordinates; clean the file first"
        )
    pts_t = torch.as_tensor(np.ascontiguousarray(pts), dtype=dtype)
    nrm_t = torch.as_tensor(np.ascontiguousarray(nrm), dtype=dtype) if nrm is not None else None
    # After the cast: a finite float64 such as 1e308 overflows float32 to inf.
    if not bool(torch.isfinite(pts_t).all()):
        raise InvalidInputError(f"{p} has coordinates beyond the range of {dtype}; rescale the file")
    if nrm_t is not None and not bool(torch.isfinite(nrm_t).all()):
        raise InvalidInputError(f"{p} has NaN or infinite normals; clean the file first")
    return pts_t, nrm_t


def save_point_cloud(
    points: Tensor,
    path: str | os.PathLike[str],
    *,
    normals: Tensor | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``points (N, 3)`` (and ``normals (N, 3)``) atomically as PLY (binary), XYZ or NPY."""
    check_points(points, "points", 3)
    if points.ndim != 2:
        raise ShapeError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if normals is not None and normals.shape != points.shape:
        raise ShapeError(f"normals {tuple(normals.shape)} must match points {tuple(points.shape)}")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in CLOUD_FORMATS:
        raise UnsupportedFormatError(f"cannot write point clouds as '{suffix}'; use {CLOUD_FORMATS}")
    pts = points.detach().cpu().double().numpy()
    arr = pts if normals is None else np.concatenate([pts, normals.detach().cpu().double().numpy()], 1)
    # float64 points are written in float64 (a cloud far from the origin keeps its detail)
    wide = points.dtype == torch.float64
    with atomic_path(p, overwrite=overwrite) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr if wide else arr.astype(np.float32))
        elif suffix == ".xyz":
            np.savetxt(tmp, arr, fmt="%.17g" if wide else "%.7g")
        else:
            names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else [])
            header = "ply\nformat binary_little_endian 1.0\ncomment written by equivision\n"
            header += f"element vertex {len(arr)}\n"
            kind = "double" if wide else "float"
            header += "".join(f"property {kind} {n}\n" for n in names) + "end_header\n"
            with open(tmp, "wb") as f:
                f.write(header.encode("ascii"))
                f.write(arr.astype("<f8" if wide else "<f4").tobytes())
    return p
