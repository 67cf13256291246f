"""Degraded clouds for benchmarks: the visible half of an object, sparse noisy resamplings."""

from __future__ import annotations

import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError


def random_direction(seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """A uniformly random unit vector ``(3,)`` (a normalised Gaussian), reproducible from ``seed``."""
    d = torch.randn(3, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return (d / d.norm()).to(dtype)


def half_space_crop(points: Tensor, normal: Tensor | None = None, *, seed: int = 0,
                    offset: float = 0.0) -> tuple[Tensor, Tensor]:
    """The points ``(N, 3)`` on the positive side of a plane through their centroid:
    ``⟨x − centroid, n⟩ ≥ offset`` with the unit normal ``n = normal / |normal|`` (a random
    direction from ``seed`` when ``normal`` is None; ``offset`` in the points' units).
    Returns ``(kept points (M, 3), mask (N,) bool)``. Moving the cloud and the normal by the
    same rotation and translation keeps the same points."""
    check_points(points, "points", 3, min_points=1)
    if points.ndim != 2:
        raise ShapeError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if normal is None:
        n = random_direction(seed)
    else:
        if not isinstance(normal, Tensor) or normal.shape != (3,):
            shape = tuple(getattr(normal, "shape", ()))
            raise ShapeError(f"normal must be a tensor of shape (3,), got {shape}")
        n = normal.double()
        norm = float(n.norm())
        if not (norm > 0 and torch.isfinite(n).all()):
            raise InvalidInputError(f"normal must be a finite non-zero vector, got {normal.tolist()}")
        n = n / norm
    p = points.double()
    mask = (p - p.mean(0)) @ n.to(p.device) >= float(offset)
    if not bool(mask.any()):
        raise DegenerateGeometryError(f"no point lies at offset >= {offset} along the normal")
    return points[mask], mask


def sparse_noisy_resample(points: Tensor, n_points: int = 300, sigma: float = 0.005, *,
                          seed: int = 0) -> Tensor:
    """A random subset of ``n_points`` of ``points (N, 3)`` (without replacement) moved by
    Gaussian noise of standard deviation ``sigma`` (in the points' units: a fraction of the
    box for unit-box shapes): ``(n_points, 3)``, reproducible from ``seed``."""
    check_points(points, "points", 3, min_points=1)
    if points.ndim != 2:
        raise ShapeError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise InvalidInputError(f"n_points must be a positive integer, got {n_points!r}")
    if n_points > points.shape[0]:
        raise InvalidInputError(f"cannot pick {n_points} of {points.shape[0]} points without replacement")
    if not sigma >= 0:
        raise InvalidInputError(f"sigma must be >= 0, got {sigma}")
    g = torch.Generator().manual_seed(int(seed))
    pick = torch.randperm(points.shape[0], generator=g)[:n_points]
    eps = torch.randn(n_points, 3, generator=g, dtype=torch.float64)
    return points[pick.to(points.device)] + (sigma * eps).to(points.dtype).to(points.device)
