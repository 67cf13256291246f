"""Procedural shapes with a seed: primitives, superquadric-like solids and simple CSG.

Every shape is a signed distance function (negative inside) built from closed-form
primitive SDFs combined with min (union) and max (intersection/difference); its mesh comes
from marching cubes on that field. Shapes are upright (+y up, like ShapeNet) and normalised
to the unit bounding box; :meth:`ProceduralShape.sdf` is expressed in the same normalised
coordinates, so it is the (approximate) distance field of the mesh — exact for the
primitives marked ``exact_sdf`` (away from marching-cubes discretisation).

Families (labels in this order): ellipsoid, box, cylinder, cone, torus, capsule, dumbbell,
holed_box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import InvalidInputError
from equivision.io.meshes import Mesh

FAMILIES: tuple[str, ...] = (
    "ellipsoid",
    "box",
    "cylinder",
    "cone",
    "torus",
    "capsule",
    "dumbbell",
    "holed_box",
)
# Families whose SDF is the exact Euclidean distance (the others are bounds near the surface)
EXACT_SDF = {"box", "cylinder", "cone", "torus", "capsule"}

SDF = Callable[[Tensor], Tensor]


# ----- primitive SDFs on (N, 3) float64 points -------------------------------------------------
def _len_xz(p: Tensor) -> Tensor:
    return torch.hypot(p[:, 0], p[:, 2])


def sdf_sphere(p: Tensor, r: float) -> Tensor:
    return p.norm(dim=-1) - r


def sdf_ellipsoid(p: Tensor, radii: Tensor) -> Tensor:
    """A distance bound for an axis-aligned ellipsoid (exact on the surface, sign exact)."""
    k0 = (p / radii).norm(dim=-1)
    k1 = (p / radii**2).norm(dim=-1)
    return k0 * (k0 - 1) / k1.clamp_min(1e-12)


def sdf_box(p: Tensor, half: Tensor, rounding: float = 0.0) -> Tensor:
    q = p.abs() - half + rounding
    outside = q.clamp_min(0).norm(dim=-1)
    inside = q.amax(dim=-1).clamp_max(0)
    return outside + inside - rounding


def sdf_cylinder_y(p: Tensor, r: float, h: float) -> Tensor:
    d = torch.stack([_len_xz(p) - r, p[:, 1].abs() - h], -1)
    return d.amax(-1).clamp_max(0) + d.clamp_min(0).norm(dim=-1)


def sdf_cylinder_x(p: Tensor, r: float, h: float) -> Tensor:
    return sdf_cylinder_y(p[:, [1, 0, 2]], r, h)


def sdf_capped_cone_y(p: Tensor, h: float, r1: float, r2: float) -> Tensor:
    """Exact SDF of a cone frustum along y: radius ``r1`` at ``y = −h``, ``r2`` at ``y = +h``."""
    qx, qy = _len_xz(p), p[:, 1]
    k1 = torch.tensor([r2, h], dtype=p.dtype)
    k2 = torch.tensor([r2 - r1, 2 * h], dtype=p.dtype)
    rad = torch.where(qy < 0, torch.full_like(qy, r1), torch.full_like(qy, r2))
    ca = torch.stack([qx - torch.minimum(qx, rad), qy.abs() - h], -1)
    q = torch.stack([qx, qy], -1)
    t = (((k1 - q) * k2).sum(-1) / (k2 * k2).sum()).clamp(0, 1)
    cb = q - k1 + k2 * t[:, None]
    sign = torch.where((cb[:, 0] < 0) & (ca[:, 1] < 0), -1.0, 1.0).to(p.dtype)
    return sign * torch.minimum((ca * ca).sum(-1), (cb * cb).sum(-1)).sqrt()


def sdf_torus_y(p: Tensor, big_r: float, r: float) -> Tensor:
    return torch.stack([_len_xz(p) - big_r, p[:, 1]], -1).norm(dim=-1) - r


def sdf_capsule_y(p: Tensor, h: float, r: float) -> Tensor:
    axis = torch.zeros_like(p)
    axis[:, 1] = p[:, 1].clamp(-h, h)
    return (p - axis).norm(dim=-1) - r


# ----- families ------------------------------------------------------------------------------------
def _family_sdf(family: str, rng: np.random.Generator) -> tuple[SDF, dict[str, float], float]:
    """The SDF, its parameters, and a radius bounding the shape."""
    u = rng.uniform
    if family == "ellipsoid":
        radii = torch.tensor(sorted(u(0.3, 1.0, 3), reverse=True), dtype=torch.float64)
        radii = radii[torch.from_numpy(rng.permutation(3))]
        return (
            (lambda p: sdf_ellipsoid(p, radii)),
            {"rx": float(radii[0]), "ry": float(radii[1]), "rz": float(radii[2])},
            float(radii.max()),
        )
    if family == "box":
        half = torch.tensor(u(0.3, 1.0, 3), dtype=torch.float64)
        rr = float(u(0.0, 0.1)) * float(half.min())
        return (
            (lambda p: sdf_box(p, half, rr)),
            {"hx": float(half[0]), "hy": float(half[1]), "hz": float(half[2]), "rounding": rr},
            float(half.norm()),
        )
    if family == "cylinder":
        r, h = float(u(0.3, 0.8)), float(u(0.4, 1.0))
        return (lambda p: sdf_cylinder_y(p, r, h)), {"r": r, "h": h}, math.hypot(r, h)
    if family == "cone":
        h, r1, r2 = float(u(0.5, 1.0)), float(u(0.5, 0.9)), float(u(0.0, 0.15))
        return (lambda p: sdf_capped_cone_y(p, h, r1, r2)), {"h": h, "r1": r1, "r2": r2}, math.hypot(r1, h)
    if family == "torus":
        big_r = float(u(0.55, 0.8))
        r = float(u(0.12, 0.3))
        return (lambda p: sdf_torus_y(p, big_r, r)), {"R": big_r, "r": r}, big_r + r
    if family == "capsule":
        h, r = float(u(0.3, 0.8)), float(u(0.2, 0.45))
        return (lambda p: sdf_capsule_y(p, h, r)), {"h": h, "r": r}, h + r
    if family == "dumbbell":
        h, rb, rr = float(u(0.5, 0.8)), float(u(0.25, 0.4)), float(u(0.06, 0.14))

        def f(p: Tensor) -> Tensor:
            top = p - torch.tensor([0.0, h, 0.0], dtype=p.dtype)
            bot = p + torch.tensor([0.0, h, 0.0], dtype=p.dtype)
            balls = torch.minimum(sdf_sphere(top, rb), sdf_sphere(bot, rb))
            return torch.minimum(balls, sdf_cylinder_y(p, rr, h))

        return f, {"h": h, "ball_r": rb, "rod_r": rr}, h + rb
    if family == "holed_box":
        half = torch.tensor(u(0.45, 0.9, 3), dtype=torch.float64)
        hole = float(u(0.35, 0.6)) * float(min(half[1], half[2]))

        def g(p: Tensor) -> Tensor:  # a box with a round hole drilled along x
            return torch.maximum(sdf_box(p, half), -sdf_cylinder_x(p, hole, float(half[0]) + 1.0))

        return (
            g,
            {"hx": float(half[0]), "hy": float(half[1]), "hz": float(half[2]), "hole_r": hole},
            float(half.norm()),
        )
    raise InvalidInputError(f"unknown shape family '{family}'; families: {', '.join(FAMILIES)}")


@dataclass
class ProceduralShape:
    """One seeded shape. ``sdf`` and ``mesh`` are in unit-box coordinates."""

    family: str
    seed: int
    params: dict[str, float]
    center: Tensor  # (3,) the normalisation: x_unit = (x_raw − center) / scale
    scale: float
    _raw_sdf: SDF = field(repr=False)
    _bound: float = field(repr=False)

    @property
    def label(self) -> int:
        return FAMILIES.index(self.family)

    @property
    def exact_sdf(self) -> bool:
        return self.family in EXACT_SDF

    def sdf(self, points: Tensor) -> Tensor:
        """Signed distance (negative inside) at ``points (..., 3)`` → ``(...,)``, same dtype;
        differentiable with respect to ``points``."""
        check_points(points, "points", 3)
        # differentiable: autograd through the SDF gives the exact surface normal direction
        p = points.double().cpu().reshape(-1, 3) * self.scale + self.center
        d = self._raw_sdf(p) / self.scale
        return d.reshape(points.shape[:-1]).to(points.dtype).to(points.device)

    def mesh(self, resolution: int = 64) -> Mesh:
        """Marching-cubes mesh of the zero level set, outward-facing, in unit-box coordinates."""
        return _mesh_raw_sdf(self._raw_sdf, self._bound, resolution, self.center, self.scale)


def _mesh_raw_sdf(sdf: SDF, bound: float, resolution: int, center: Tensor, scale: float) -> Mesh:
    from skimage.measure import marching_cubes

    if resolution < 8:
        raise InvalidInputError(f"resolution must be >= 8, got {resolution}")
    lim = bound * 1.1 + 0.05
    ax = torch.linspace(-lim, lim, resolution, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    vol = sdf(grid).reshape(resolution, resolution, resolution).numpy()
    step = float(ax[1] - ax[0])
    verts, faces, _, _ = marching_cubes(vol, level=0.0, spacing=(step, step, step))
    verts = verts - lim
    # skimage orients faces toward increasing values (outside, for an SDF) in its index
    # convention; verify with the signed volume and flip if inward.
    v = torch.from_numpy(verts.copy())
    f = torch.from_numpy(faces.astype(np.int64))
    signed_vol = (v[f[:, 0]] * torch.linalg.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    if float(signed_vol) < 0:
        f = f[:, [0, 2, 1]]
    v = (v - center) / scale
    return Mesh(v.float(), f)


def _raw_bbox(sdf: SDF, bound: float) -> tuple[Tensor, float]:
    """Centre and longest side of the solid's bounding box, from a fine sampling of the SDF."""
    n = 96
    lim = bound * 1.1 + 0.05
    ax = torch.linspace(-lim, lim, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    inside = grid[sdf(grid) <= 0]
    if len(inside) == 0:
        raise InvalidInputError("procedural shape is empty")
    lo, hi = inside.amin(0), inside.amax(0)
    step = float(ax[1] - ax[0])
    return (lo + hi) / 2, float((hi - lo).amax()) + step


def make_shape(family: str, seed: int = 0) -> ProceduralShape:
    """A shape of ``family`` with parameters drawn from ``seed`` (same seed, same shape)."""
    if family not in FAMILIES:
        raise InvalidInputError(f"unknown shape family '{family}'; families: {', '.join(FAMILIES)}")
    rng = np.random.default_rng([FAMILIES.index(family), int(seed)])
    sdf, params, bound = _family_sdf(family, rng)
    center, scale = _raw_bbox(sdf, bound)
    return ProceduralShape(family, int(seed), params, center, scale, sdf, bound)


def make_shapes(
    n_per_family: int, seed: int = 0, families: tuple[str, ...] = FAMILIES
) -> list[ProceduralShape]:
    """``n_per_family`` shapes of each family, deterministic in ``seed``."""
    if n_per_family < 1:
        raise InvalidInputError(f"n_per_family must be >= 1, got {n_per_family}")
    from equivision.data.seeds import derive_seed

    return [make_shape(f, derive_seed(seed, i)) for f in families for i in range(n_per_family)]
