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


def unit_box_transform(points: Tensor) -> tuple[Tensor, Tensor]:
    """``(center (3,), scale ())`` of the unit-box normalisation of ``points (N, 3)``."""
    check_points(points, "points", 3)
    lo, hi = points.amin(dim=-2), points.amax(dim=-2)
    scale = (hi - lo).amax(dim=-1)
    if bool((scale <= 0).any()):
        raise DegenerateGeometryError("all points coincide: the bounding box has zero size")
    return (lo + hi) / 2, scale


def normalize_points(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Map ``points (N, 3)`` into the unit box. Returns ``(normalized, center, scale)``."""
    center, scale = unit_box_transform(points)
    return (points - center) / scale, center, scale


def denormalize_points(points: Tensor, center: Tensor, scale: Tensor) -> Tensor:
    """Inverse of :func:`normalize_points`."""
    return points * scale + center


def normalize_mesh(mesh: Mesh) -> tuple[Mesh, Tensor, Tensor]:
    """Map a mesh into the unit box (by its vertices' bounding box).
    Returns ``(normalized mesh, center, scale)``."""
    validate_mesh(mesh)
    v, center, scale = normalize_points(mesh.vertices)
    return Mesh(v, mesh.faces), center, scale


def bounding_box_diagonal(points: Tensor) -> Tensor:
    """Length of the bounding-box diagonal of ``points (N, 3)``."""
    check_points(points, "points", 3)
    return torch.linalg.vector_norm(points.amax(-2) - points.amin(-2), dim=-1)
