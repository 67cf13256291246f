"""The first hit of each ray on a mesh, behind one function, whatever computes it.

:func:`intersect_first` takes any batch of rays ``(..., 3)`` and returns the distance to the
first hit, the face hit and that face's unit normal. The back end (``backend=``):

* ``"embree"``: Intel Embree through trimesh (package ``embreex``, CPU), the fastest; its
  float32 distance is recomputed in the rays' dtype against the hit face's plane;
* ``"through_point"``: :func:`first_hits_through_point`, PyTorch on any device, for rays whose
  lines all pass through one point (a sphere grid cast toward its centre, a pinhole camera);
* ``"torch"``: :func:`first_hits_torch`, brute force over every ray–face pair, any rays;
* ``"auto"`` (default): Embree when installed, else ``"through_point"`` when the rays share a
  point, else ``"torch"``. Tests force a PyTorch back end by naming it.

Any function with the :data:`HitsFn` signature is accepted as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.geometry.sampling import face_areas_and_normals
from equivision.io.meshes import Mesh, validate_mesh
from equivision.render.intersect_embree import embree_available, first_hits_embree
from equivision.render.intersect_torch import first_hits_through_point, first_hits_torch
from equivision.render.rays import share_a_point

HitsFn = Callable[[Mesh, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``hits(mesh, origins (N, 3), directions (N, 3) unit) -> (t (N,), face (N,))``: distance to
the first hit along each ray (``inf`` for a miss) and the face hit (``-1`` for a miss)."""

Backend = Literal["auto", "embree", "through_point", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "embree", "through_point", "torch")


class Hits(NamedTuple):
    """First hits of rays ``(...)``: ``distance (...)`` along the unit direction (``inf`` for a
    miss), ``face (...)`` the index of the face hit (``-1`` for a miss) and ``normal (..., 3)``
    that face's unit normal as the mesh orients it (zero for a miss)."""

    distance: Tensor
    face: Tensor
    normal: Tensor

    @property
    def hit(self) -> Tensor:
        """``(...)`` bool: the rays that hit a face."""
        return torch.isfinite(self.distance) & (self.face >= 0)


def hits_function(backend: Backend | HitsFn, origins: Tensor, directions: Tensor) -> HitsFn:
    """The first-hit function that ``backend`` names for these rays ``(N, 3)`` (see the
    module docstring); a callable is returned as it is."""
    if callable(backend):
        return backend
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {BACKENDS} or a function, got {backend!r}")
    if backend == "embree" or (backend == "auto" and embree_available()):
        if not embree_available():
            raise InvalidInputError("backend 'embree' needs the embreex package (pip install embreex)")
        return first_hits_embree
    if backend == "through_point" or (backend == "auto" and share_a_point(origins, directions)):
        return first_hits_through_point
    return first_hits_torch


def _check_rays(origins: Tensor, directions: Tensor) -> None:
    for name, x in (("origins", origins), ("directions", directions)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise InvalidInputError(f"ray {name} must be a floating-point tensor (..., 3)")
        if x.ndim == 0 or x.shape[-1] != 3:
            raise ShapeError(f"ray {name} must have shape (..., 3), got {tuple(x.shape)}")
    if origins.shape != directions.shape:
        raise ShapeError(
            f"ray origins {tuple(origins.shape)} and directions {tuple(directions.shape)} differ in shape")
    if not bool(torch.isfinite(origins).all() & torch.isfinite(directions).all()):
        raise InvalidInputError("rays have NaN or infinite origins or directions")
    # distances are measured along the direction, and the bucketing reads angles off it; the
    # tolerance admits directions turned by float32 rotations
    if directions.numel() and float((directions.norm(dim=-1) - 1).abs().max()) > 1e-3:
        raise InvalidInputError("ray directions must be unit vectors")


def intersect_first(
    mesh: Mesh, origins: Tensor, directions: Tensor, *, backend: Backend | HitsFn = "auto"
) -> Hits:
    """First hit of each ray ``origins + t · directions`` (``t > 0``) on ``mesh``.

    Args:
        mesh: the triangle mesh, in the rays' coordinates.
        origins: ``(..., 3)`` ray origins.
        directions: ``(..., 3)`` unit directions.
        backend: which intersection computes the hits (module docstring) or a :data:`HitsFn`.

    Returns:
        :class:`Hits` with ``distance (...)`` in the rays' dtype, ``face (...)`` long and
        ``normal (..., 3)``, on the device the back end returns (the CPU for Embree).
    """
    validate_mesh(mesh)
    _check_rays(origins, directions)
    lead = origins.shape[:-1]
    o, d = origins.reshape(-1, 3), directions.reshape(-1, 3)
    t, face = hits_function(backend, o, d)(mesh, o, d)
    hit = torch.isfinite(t) & (face >= 0)
    _, normals = face_areas_and_normals(mesh)
    normal = normals.to(face.device)[face.clamp_min(0)]
    normal = torch.where(hit[:, None], normal, torch.zeros_like(normal))
    return Hits(t.reshape(lead), face.reshape(lead), normal.reshape(*lead, 3))


__all__ = ["BACKENDS", "Backend", "Hits", "HitsFn", "hits_function", "intersect_first"]
