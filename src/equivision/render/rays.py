"""Rays from a point: the rays of a sphere grid cast toward its centre, and the test that a
bundle of rays shares one point (what the bucketed PyTorch back end relies on).

Rays are plain tensors: ``origins (N, 3)`` and unit ``directions (N, 3)``, a hit at distance
``t`` lying at ``origins + t · directions``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.groups.spatial import check_rotation_matrix
from equivision.sphere.grid import Grid


def grid_directions(bandwidth: int, rotations: Tensor | None = None) -> Tensor:
    """Unit vectors of the Driscoll–Healy grid, float64: ``(2B·2B, 3)``, or ``(R·2B·2B, 3)``
    for ``rotations (R, 3, 3)``, each block rotated by ``Rᵀ``: seen from rays rotated by
    ``Rᵀ``, a fixed mesh looks like the mesh rotated by ``R`` seen from the plain grid."""
    u = Grid(bandwidth).points(dtype=torch.float64)  # (2B, 2B, 3)
    if rotations is None:
        return u.reshape(-1, 3)
    check_rotation_matrix(rotations, "rotations")
    if rotations.ndim != 3:
        raise InvalidInputError(f"rotations must be (R, 3, 3), got {tuple(rotations.shape)}")
    return (u.reshape(1, -1, 3) @ rotations.to(torch.float64).cpu()).reshape(-1, 3)


def rays_toward_center(center: Tensor, radius: float, unit: Tensor) -> tuple[Tensor, Tensor]:
    """Rays from the points ``center + radius · unit`` of a sphere toward (and through) its
    centre: ``origins (N, 3)`` and ``directions = −unit (N, 3)``, for ``unit (N, 3)``."""
    return center + radius * unit, -unit


def common_point(origins: Tensor, directions: Tensor, *, rtol: float = 1e-9) -> Tensor:
    """The point ``(3,)`` that every ray's line passes through (least squares), or
    :class:`InvalidInputError` if the lines do not meet within ``rtol`` of their extent."""
    p, miss, scale = _nearest_point(origins, directions)
    if not miss <= rtol * scale:
        raise InvalidInputError("the rays do not all pass through one point; use first_hits_torch")
    return p


def share_a_point(origins: Tensor, directions: Tensor, *, rtol: float = 1e-9) -> bool:
    """Whether every ray's line passes through one point (see :func:`common_point`)."""
    if origins.shape[0] == 0:
        return True
    _, miss, scale = _nearest_point(origins, directions)
    return miss <= rtol * scale


def _nearest_point(origins: Tensor, directions: Tensor) -> tuple[Tensor, float, float]:
    o, d = origins.double(), directions.double()
    proj = torch.eye(3, dtype=o.dtype, device=o.device) - d[:, :, None] * d[:, None, :]  # (N, 3, 3)
    p = torch.linalg.lstsq(proj.sum(0), (proj @ o[:, :, None]).sum(0)).solution[:, 0]
    miss = float((proj @ (p - o)[:, :, None]).norm(dim=1).max())
    # relative to the rays' extent and position: the origins of a pinhole camera's rays all
    # sit on the common point itself
    scale = max(float((o - p).norm(dim=-1).max()), float(o.norm(dim=-1).max())) + 1e-300
    return p, miss, scale


__all__ = ["common_point", "grid_directions", "rays_toward_center", "share_a_point"]
