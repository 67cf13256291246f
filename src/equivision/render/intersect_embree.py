"""First hits with Intel Embree through trimesh (package ``embreex``), on the CPU."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from equivision.io.meshes import Mesh


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


__all__ = ["embree_available", "first_hits_embree"]
