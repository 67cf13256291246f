"""Seeded sampling of points on mesh surfaces, farthest-point sampling, and noise."""

from __future__ import annotations

import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.groups.base import make_generator
from equivision.io.meshes import Mesh, validate_mesh


def face_areas_and_normals(mesh: Mesh) -> tuple[Tensor, Tensor]:
    """Per-face ``areas (F,)`` and unit ``normals (F, 3)`` (zero for zero-area faces)."""
    v, f = mesh
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = torch.linalg.cross(b - a, c - a)
    norm = torch.linalg.vector_norm(cross, dim=-1)
    normals = cross / norm.clamp_min(torch.finfo(v.dtype).tiny)[:, None]
    return norm / 2, normals


def _check_count(n: int) -> None:
    if int(n) != n or n < 1:
        raise InvalidInputError(f"number of samples must be a positive integer, got {n}")


def sample_surface_uniform(
    mesh: Mesh, n: int, *, seed: int | None = 0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` points uniformly distributed by area on the surface, with the normals of the
    faces they lie on: ``(points (n, 3), normals (n, 3))``. Reproducible with ``seed``."""
    validate_mesh(mesh)
    _check_count(n)
    gen = make_generator(seed, generator)
    v64 = mesh.vertices.detach().cpu().double()
    areas, normals = face_areas_and_normals(Mesh(v64, mesh.faces.cpu()))
    total = float(areas.sum())
    if not total > 0:
        raise DegenerateGeometryError("mesh has zero surface area (all faces degenerate)")
    face = torch.multinomial(areas / total, n, replacement=True, generator=gen)
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    su = u[:, 0].sqrt()  # uniform barycentric coordinates (Turk's square-root trick)
    w0, w1, w2 = 1 - su, su * (1 - u[:, 1]), su * u[:, 1]
    f = mesh.faces.cpu()[face]
    pts = w0[:, None] * v64[f[:, 0]] + w1[:, None] * v64[f[:, 1]] + w2[:, None] * v64[f[:, 2]]
    dt, dev = mesh.vertices.dtype, mesh.vertices.device
    return pts.to(dt).to(dev), normals[face].to(dt).to(dev)


def farthest_point_sampling(
    points: Tensor, n: int, *, seed: int | None = 0, generator: torch.Generator | None = None
) -> Tensor:
    """Indices ``(n,)`` of a greedy farthest-point subset of ``points (N, 3)``, starting
    from a seeded random point. Each new point is the one farthest from those chosen."""
    check_points(points, "points", 3)
    _check_count(n)
    if points.ndim != 2:
        raise InvalidInputError(f"points must be (N, 3), got {tuple(points.shape)}")
    num = points.shape[0]
    if n > num:
        raise InvalidInputError(f"cannot choose {n} points out of {num}")
    gen = make_generator(seed, generator)
    idx = torch.empty(n, dtype=torch.long)
    idx[0] = int(torch.randint(num, (1,), generator=gen))
    p = points.detach()
    dist = torch.linalg.vector_norm(p - p[idx[0]], dim=-1)
    for i in range(1, n):
        j = int(torch.argmax(dist))
        idx[i] = j
        dist = torch.minimum(dist, torch.linalg.vector_norm(p - p[j], dim=-1))
    return idx.to(points.device)


def sample_surface_poisson_disk(
    mesh: Mesh,
    n: int,
    *,
    oversample: int = 4,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``n`` well-spread surface points (blue noise): ``oversample × n`` uniform samples
    thinned by farthest-point sampling, so no two points are closer than the final covering
    radius (a Poisson-disk set). Returns ``(points (n, 3), normals (n, 3))``."""
    _check_count(n)
    if oversample < 1:
        raise InvalidInputError(f"oversample must be >= 1, got {oversample}")
    gen = make_generator(seed, generator)
    pts, nrm = sample_surface_uniform(mesh, n * oversample, generator=gen)
    keep = farthest_point_sampling(pts, n, generator=gen)
    return pts[keep], nrm[keep]


def add_gaussian_noise(
    points: Tensor, sigma: float, *, seed: int | None = 0, generator: torch.Generator | None = None
) -> Tensor:
    """``points + σ ε`` with ``ε ~ N(0, I)``; ``σ`` in the points' units (for unit-box
    shapes, a fraction of the box). Reproducible with ``seed``."""
    check_points(points, "points", points.shape[-1] if points.ndim else 3)
    if not sigma >= 0:
        raise InvalidInputError(f"sigma must be >= 0, got {sigma}")
    gen = make_generator(seed, generator)
    eps = torch.randn(points.shape, generator=gen, dtype=torch.float64)
    return points + (sigma * eps).to(points.dtype).to(points.device)
