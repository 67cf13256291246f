"""Drop extracted faces that stand off the input points' tangent planes.

Why: on thin CAD plates the learned field puts a second sheet of surface *inside* the solid,
a few voxels behind the true wall, and its crossing edges look like real ones to the
extraction (``|Δa| + |Δb|`` 0.46 voxel against 3.77 in the exact field on ABC 00994122;
benchmarks/RESULTS.md, "Where the normals are lost"). Those sheets are what lowers the
normal consistency. The input points tell them apart: a true surface vertex lies on (near) the
tangent plane of the input points around it; a vertex of a sheet inside a plate is as near to
the points as the wall is but several voxels off their planes.

Each input point gets an unoriented normal, the least principal axis of its ``k`` nearest
points (k = 10). A vertex's offset is its distance to the tangent plane of its nearest input
point, or the smallest over its ``neighbours`` nearest (more forgiving at sharp edges, where
the nearest point's plane can be the other face's). Faces with a vertex whose offset exceeds
the limit are dropped; nothing moves. Everything here depends only on distances and on the
PCA axes up to sign, so it commutes with rotations and translations of cloud and mesh
together (tested).
"""

from __future__ import annotations

import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.io.meshes import Mesh
from equivision.recon.extract import keep_faces
from equivision.recon.patches import knn_indices

#: Points per PCA normal (the prototype's choice; 10 is also pymeshlab's default).
NORMAL_NEIGHBOURS = 10


def point_normals(points: Tensor, k: int = NORMAL_NEIGHBOURS) -> Tensor:
    """Unoriented unit normals ``(N, 3)`` of ``points (N, 3)``: the eigenvector of the smallest
    eigenvalue of the covariance of each point's ``k`` nearest points (itself included).
    The sign is arbitrary; only the line matters here. Computed in float64."""
    check_points(points, "points", 3)
    if points.ndim != 2:
        raise ShapeError(f"points must be (N, 3), got {tuple(points.shape)}")
    if int(k) != k or k < 3:
        raise InvalidInputError(f"k must be an integer of at least 3 (a plane needs 3 points), got {k}")
    if points.shape[0] < k:
        raise DegenerateGeometryError(f"{points.shape[0]} points are fewer than the k = {k} a normal needs")
    p = points.detach().double()
    nb = p[knn_indices(p, p, int(k))]  # (N, k, 3)
    d = nb - nb.mean(1, keepdim=True)
    # batched eigh, not the closed form of the frames: in flat regions the two largest
    # eigenvalues are nearly equal, where the closed form's orthogonalisation is fragile
    _, vec = torch.linalg.eigh(d.transpose(1, 2) @ d / k)  # ascending
    return vec[:, :, 0].to(points.dtype)


def tangent_plane_offsets(vertices: Tensor, points: Tensor, normals: Tensor, neighbours: int = 1) -> Tensor:
    """``(V,)``: for each of ``vertices (V, 3)``, the smallest distance to the tangent planes
    (through ``points (N, 3)``, normal ``normals (N, 3)``) of its ``neighbours`` nearest
    points. In the vertices' dtype."""
    check_points(vertices, "vertices", 3, min_points=0)
    if normals.shape != points.shape:
        raise ShapeError(f"normals {tuple(normals.shape)} must match points {tuple(points.shape)}")
    if int(neighbours) != neighbours or neighbours < 1:
        raise InvalidInputError(f"neighbours must be a positive integer, got {neighbours}")
    if len(vertices) == 0:
        return vertices.new_zeros(0)
    v, p, n = vertices.detach().double(), points.detach().double(), normals.detach().double()
    j = knn_indices(p, v, int(neighbours))  # (V, m)
    off = ((v[:, None, :] - p[j]) * n[j]).sum(-1).abs()
    return off.min(1).values.to(vertices.dtype)


def drop_faces_off_tangent_planes(
    mesh: Mesh, points: Tensor, max_offset: float, *, neighbours: int = 1,
    k: int = NORMAL_NEIGHBOURS, normals: Tensor | None = None,
) -> Mesh:
    """``mesh`` without the faces that have a vertex farther than ``max_offset`` (in the
    mesh's units) from the tangent planes of the input ``points (N, 3)`` (see the module doc);
    unused vertices go, the others keep their order and place. ``normals``: the points'
    unoriented normals if already known (else :func:`point_normals` with ``k``)."""
    if not max_offset > 0:
        raise InvalidInputError(f"max_offset must be positive, got {max_offset}")
    if len(mesh.faces) == 0:
        return mesh
    if normals is None:
        normals = point_normals(points, k)
    off = tangent_plane_offsets(mesh.vertices, points, normals, neighbours)
    bad = (off > max_offset).to(mesh.faces.device)
    return keep_faces(mesh, ~bad[mesh.faces].any(1))
