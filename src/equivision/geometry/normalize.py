"""Normalisation to the unit bounding box: centre the box at the origin, longest side 1.

This is the convention of every reconstruction metric in equivision. The functions return the
centre and scale so results can be mapped back with :func:`denormalize_points`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError
from equivision.io.meshes import Mesh, validate_mesh


def _unit_box_transform64(points: Tensor) -> tuple[Tensor, Tensor]:
    check_points(points, "points", 3)
    p = points.double()  # (lo + hi) / 2 and hi - lo in float64: no overflow, no lost offset
    lo, hi = p.amin(dim=-2), p.amax(dim=-2)
    scale = (hi - lo).amax(dim=-1)
    if bool((scale <= 0).any()):
        raise DegenerateGeometryError("all points coincide: the bounding box has zero size")
    return (lo + hi) / 2, scale


def unit_box_transform(points: Tensor) -> tuple[Tensor, Tensor]:
    """``(center (3,), scale ())`` of the unit-box normalisation of ``points (N, 3)``, in the
    points' dtype (computed in float64)."""
    center, scale = _unit_box_transform64(points)
    return center.to(points.dtype), scale.to(points.dtype)


def normalize_points(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Map ``points (N, 3)`` into the unit box. Returns ``(normalized, center, scale)``, all in
    the points' dtype; the centring and scaling run in float64 and are cast afterwards, so
    float64 points far from the origin keep their detail when cast to float32 later."""
    center, scale = _unit_box_transform64(points)
    unit = (points.double() - center) / scale
    return unit.to(points.dtype), center.to(points.dtype), scale.to(points.dtype)


def denormalize_points(points: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """Inverse of :func:`normalize_points`."""
    return points * scale + center


def normalize_mesh(mesh: Mesh) -> tuple[Mesh, Tensor, Tensor]:
    """Map a mesh into the unit box (by its vertices' bounding box).
    Returns ``(normalized mesh, center, scale)``."""
    validate_mesh(mesh)
    v, center, scale = normalize_points(mesh.vertices)
    return Mesh(v, mesh.faces), center, scale


#: Smallest total area / (longest bounding-box side)² of a mesh with a surface: the faces of a
#: collinear mesh keep ~1e-7 from float32 rounding, a needle of radius 1e-4 has ~6e-4.
MIN_RELATIVE_AREA = 1e-6


def check_mesh_area(mesh: Mesh, name: str = "mesh", *, min_relative_area: float = MIN_RELATIVE_AREA) -> float:
    """Refuse a mesh with (almost) no area *relative to its own size*: total face area divided
    by the square of its bounding box's longest side below ``min_relative_area`` (collinear
    or collapsed faces, exactly or to rounding). Flat meshes pass. Returns that ratio."""
    validate_mesh(mesh, name)
    v = mesh.vertices.detach().double()
    center, extent = _unit_box_transform64(v)
    v = (v - center) / extent  # unit box: the area below is relative already
    f = mesh.faces
    cross = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    area = 0.5 * float(cross.norm(dim=-1).sum())
    if not area >= min_relative_area:
        raise DegenerateGeometryError(
            f"{name} has almost no surface: total area {area:.3g} × (longest side {float(extent):.4g})², "
            f"below {min_relative_area:g} of it (its faces are collinear or collapsed)"
        )
    return area


def bounding_box_diagonal(points: Tensor) -> Tensor:
    """Length of the bounding-box diagonal of ``points (N, 3)``."""
    check_points(points, "points", 3)
    return torch.linalg.vector_norm(points.amax(-2) - points.amin(-2), dim=-1)
