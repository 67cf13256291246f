"""Meshes as signals on the sphere, by ray casting (Esteves et al. 2018).

From every point of the Driscoll–Healy grid on a sphere enclosing the mesh, a ray is cast
toward the sphere's centre, continuing through it to the antipode (length ``2r``). Two
channels are recorded at the first hit:

* ``"distance"``: the distance travelled to the first hit, divided by the radius ``r``, in
  ``[0, 2]``; a ray that hits nothing records ``2`` (its whole length: nothing along it);
* ``"cosine"``: ``|cos|`` of the angle between the ray and the hit face's normal, in
  ``[0, 1]`` (absolute, so inconsistent face orientation in open meshes does not matter);
  ``0`` for a miss.

The centre is the area-weighted centroid of the surface and the radius the largest distance
from it to a vertex (times 1.01), so both move with the mesh: rotating the mesh about its
centroid rotates the signal, ``f_{R·M}(u) = f_M(Rᵀu)``. Meshes that are open, or do not
contain the centre (a torus), are fine: rays through holes are misses, with the values above.

First hits come from Intel Embree through trimesh (package ``embreex``) when it is installed,
otherwise from a vectorised Möller–Trumbore intersection in PyTorch (slower on CPU, but it
runs on any device). Both are public: :func:`first_hits_embree`, :func:`first_hits_torch`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.geometry.sampling import face_areas_and_normals
from equivision.groups.spatial import check_rotation_matrix
from equivision.io.meshes import Mesh, validate_mesh

HitsFn = Callable[[Mesh, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``hits(mesh, origins (N, 3), directions (N, 3) unit) -> (t (N,), face (N,))``: distance to
the first hit along each ray (``inf`` for a miss) and the face hit (``-1`` for a miss)."""

CHANNELS = ("distance", "cosine")


def embree_available() -> bool:
    try:
        import embreex  # noqa: F401
    except ImportError:
        return False
    return True


def first_hits_embree(mesh: Mesh, origins: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
    """First hits with Intel Embree (through trimesh and ``embreex``), on the CPU."""
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    tm = mesh.to_trimesh()
    o = origins.detach().cpu().double().numpy()
    d = directions.detach().cpu().double().numpy()
    tri = RayMeshIntersector(tm).intersects_first(o, d)
    t = np.full(len(o), np.inf)
    hit = tri >= 0
    if hit.any():
        # Embree works in float32: recompute the exact distance to the hit triangle's plane
        v = tm.vertices[tm.faces[tri[hit]]]
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        denom = (n * d[hit]).sum(1)
        t_plane = ((v[:, 0] - o[hit]) * n).sum(1) / np.where(np.abs(denom) < 1e-300, 1e-300, denom)
        t[hit] = t_plane
    dev = origins.device
    return torch.as_tensor(t, dtype=origins.dtype, device=dev), torch.as_tensor(tri, device=dev)


def first_hits_torch(
    mesh: Mesh, origins: Tensor, directions: Tensor, *, chunk_pairs: int = 8_000_000
) -> tuple[Tensor, Tensor]:
    """First hits by brute force over all faces, in chunks of rays (``chunk_pairs`` ray–face
    pairs at a time), on the device of ``origins``.

    Written as matrix products: the hit distance is ``t = (a·n − o·n) / (d·n)`` and the
    barycentric coordinates of ``o + t d`` are affine in it through the per-face gradient
    vectors ``g1 = (e2 × n)/|n|²``, ``g2 = (n × e1)/|n|²``, so every ray–face quantity is one
    ``(rays × 3) @ (3 × faces)`` product.
    """
    dev, dt = origins.device, origins.dtype
    v = mesh.vertices.to(device=dev, dtype=dt)
    f = mesh.faces.to(dev)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = b - a, c - a
    n = torch.linalg.cross(e1, e2)
    nn2 = (n * n).sum(-1)
    good = nn2 > (1e-30 if dt == torch.float64 else 1e-20)
    n, a, e1, e2, nn2 = n[good], a[good], e1[good], e2[good], nn2[good]
    face_ids = torch.nonzero(good).squeeze(1)
    g1 = torch.linalg.cross(e2, n) / nn2[:, None]
    g2 = torch.linalg.cross(n, e1) / nn2[:, None]
    mats = torch.stack([n, g1, g2], 0)  # (3, F, 3)
    offs = torch.stack([(a * n).sum(-1), (a * g1).sum(-1), (a * g2).sum(-1)], 0)  # (3, F)
    eps = 1e-12 if dt == torch.float64 else 1e-6
    n_rays = origins.shape[0]
    n_faces = max(1, n.shape[0])
    step = max(1, chunk_pairs // n_faces)
    t_out = torch.full((n_rays,), float("inf"), dtype=dt, device=dev)
    face_out = torch.full((n_rays,), -1, dtype=torch.long, device=dev)
    if n.shape[0] == 0:
        return t_out, face_out
    for s in range(0, n_rays, step):
        o, d = origins[s : s + step], directions[s : s + step]
        o_dot = torch.einsum("rk,mfk->mrf", o, mats) - offs[:, None, :]  # (3, r, F)
        d_dot = torch.einsum("rk,mfk->mrf", d, mats)
        denom = d_dot[0]
        ok = denom.abs() > eps * nn2.sqrt()[None]
        t = -o_dot[0] / torch.where(ok, denom, torch.ones_like(denom))
        u = o_dot[1] + t * d_dot[1]
        w = o_dot[2] + t * d_dot[2]
        valid = ok & (u >= -eps) & (w >= -eps) & (u + w <= 1 + eps) & (t > 0)
        t = torch.where(valid, t, torch.full_like(t, float("inf")))
        tmin, idx = t.min(dim=1)
        t_out[s : s + step] = tmin
        face_out[s : s + step] = torch.where(torch.isfinite(tmin), face_ids[idx], torch.full_like(idx, -1))
    return t_out, face_out


def surface_centroid(mesh: Mesh) -> Tensor:
    """Area-weighted centroid of the surface ``(3,)`` (moves with the mesh under rotations)."""
    from equivision.errors import DegenerateGeometryError

    v = mesh.vertices.double()
    area, _ = face_areas_and_normals(Mesh(v, mesh.faces))
    if not float(area.sum()) > 0:
        raise DegenerateGeometryError("mesh has zero surface area; it cannot be ray cast")
    return ((v[mesh.faces].mean(1) * area[:, None]).sum(0) / area.sum()).to(mesh.vertices.dtype)


def raycast_sphere(
    mesh: Mesh,
    bandwidth: int,
    *,
    rotations: Tensor | None = None,
    channels: Sequence[str] = CHANNELS,
    hits: HitsFn | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Ray-cast ``mesh`` onto the ``2B × 2B`` Driscoll–Healy grid of bandwidth ``B``.

    Args:
        mesh: the triangle mesh (any position and scale: the centre and radius are its own).
        bandwidth: ``B``; the signal has ``2B × 2B`` samples.
        rotations: optional ``(R, 3, 3)``: cast the mesh rotated by each (about its centroid)
            in one call; the mesh's acceleration structure is built once.
        channels: any of ``"distance"``, ``"cosine"`` (see the module docstring), in order.
        hits: the first-hit function; default Embree if installed, else :func:`first_hits_torch`.

    Returns:
        ``(C, 2B, 2B)``, or ``(R, C, 2B, 2B)`` with ``rotations``.
    """
    from equivision.sphere.grid import Grid

    validate_mesh(mesh)
    chans = list(channels)
    if not chans or any(c not in CHANNELS for c in chans):
        raise InvalidInputError(f"channels must be a non-empty subset of {CHANNELS}, got {chans}")
    grid = Grid(bandwidth)
    u = grid.points(dtype=torch.float64)  # (2B, 2B, 3) unit vectors
    rots = None
    if rotations is not None:
        check_rotation_matrix(rotations, "rotations")
        if rotations.ndim != 3:
            raise InvalidInputError(f"rotations must be (R, 3, 3), got {tuple(rotations.shape)}")
        rots = rotations.to(torch.float64).cpu()
    m64 = Mesh(mesh.vertices.detach().cpu().double(), mesh.faces.detach().cpu())
    center = surface_centroid(m64)
    radius = float((m64.vertices - center).norm(dim=-1).max()) * 1.01
    # rotating the mesh by R == casting the original with rays rotated by Rᵀ
    dirs_u = u.reshape(-1, 3) if rots is None else (u.reshape(1, -1, 3) @ rots).reshape(-1, 3)
    origins = center + radius * dirs_u
    directions = -dirs_u
    hit_fn = hits if hits is not None else (first_hits_embree if embree_available() else first_hits_torch)
    t, face = hit_fn(m64, origins, directions)
    t = t.double().cpu()
    face = face.cpu()
    hit = torch.isfinite(t) & (face >= 0) & (t <= 2 * radius)
    _, face_normals = face_areas_and_normals(m64)
    out = []
    for c in chans:
        if c == "distance":
            out.append(torch.where(hit, t / radius, torch.full_like(t, 2.0)))
        else:
            cos = (face_normals[face.clamp_min(0)] * directions).sum(-1).abs()
            out.append(torch.where(hit, cos, torch.zeros_like(cos)))
    two_b = 2 * grid.bandwidth
    sig = torch.stack(out, 0).reshape(len(chans), -1, two_b, two_b).transpose(0, 1)
    sig = sig.to(dtype)
    return sig[0] if rots is None else sig
