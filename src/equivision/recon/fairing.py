"""Taubin fairing of a reconstructed mesh: removes the vertex jitter a noisy field leaves.

A learned field places each vertex to within a few hundredths of a voxel, but the vertices
of a resolution-128 extraction are well under a voxel apart, so that jitter tilts the faces
by several degrees: the normals come out rough where the surface is smooth
(``benchmarks/RESULTS.md``, "Where the roughness and the holes come from"). Taubin's
λ|μ filter (Taubin 1995, "A signal processing approach to fair surface design") alternates a
shrinking Laplacian step ``v ← v + λ L v`` with an inflating one ``v ← v + μ L v``
(``μ < −λ < 0``): a low-pass filter on the mesh that damps the highest spatial frequencies
(the jitter) and leaves the low ones (the shape) nearly unchanged, without the shrinkage of
plain Laplacian smoothing. ``L v`` is the mean of a vertex's neighbours minus the vertex
(uniform weights).

So that the surface stays on the points, every vertex's total move is capped by
``max_move`` (the pipeline passes a fraction of a voxel), and vertices on a boundary or a
non-manifold edge stay where they are (a rim would otherwise shrink inward). The filter is
linear in the vertex positions with weights from the connectivity alone, so it commutes with
every rotation, reflection and translation: the pose guarantee of the pipeline holds (tested).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from equivision.errors import InvalidInputError
from equivision.geometry.unique import unique_rows
from equivision.io.meshes import Mesh, validate_mesh

__all__ = ["TAUBIN_LAMBDA", "TAUBIN_MU", "fixed_vertices", "taubin_fairing"]

#: Taubin's shrinking and inflating step (pass-band ``k_PB = 1/λ + 1/μ ≈ 0.11``, the values of
#: his paper's examples).
TAUBIN_LAMBDA = 0.5
TAUBIN_MU = -0.53


def _edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unique undirected edges (U, 2), how many faces use each (U,))``."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges, _, inverse = unique_rows(np.sort(e, axis=1))
    return edges, np.bincount(inverse, minlength=len(edges))


def _fixed(n: int, edges: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the ends of the edges not shared by exactly two faces."""
    fixed = np.zeros(n, dtype=bool)
    fixed[edges[counts != 2].ravel()] = True
    return fixed


def fixed_vertices(mesh: Mesh) -> torch.Tensor:
    """``(V,)`` bool: the vertices :func:`taubin_fairing` leaves in place, those on an edge
    used by one face (a boundary) or by more than two (non-manifold)."""
    validate_mesh(mesh)
    edges, counts = _edges(mesh.faces.cpu().numpy().astype(np.int64))
    return torch.as_tensor(_fixed(len(mesh.vertices), edges, counts))


def taubin_fairing(
    mesh: Mesh,
    iterations: int,
    *,
    max_move: float | None = None,
    lam: float = TAUBIN_LAMBDA,
    mu: float = TAUBIN_MU,
) -> Mesh:
    """The mesh after ``iterations`` λ|μ pairs of Taubin's filter (see the module doc).

    Args:
        mesh: vertices ``(V, 3)``, faces ``(F, 3)``; faces are kept as they are.
        iterations: λ|μ pairs (0: the mesh unchanged).
        max_move: cap on each vertex's total displacement, in the mesh's units (``None``: no
            cap); the move is shortened along its own direction.
        lam, mu: the steps, ``0 < lam < -mu``.

    Returns:
        ``Mesh`` with the same faces and dtype; boundary and non-manifold vertices, and
        vertices of no face, unchanged.
    """
    validate_mesh(mesh)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise InvalidInputError(f"iterations must be an integer >= 0, got {iterations!r}")
    if not (math.isfinite(lam) and math.isfinite(mu) and 0 < lam < -mu):
        raise InvalidInputError(f"Taubin's steps need 0 < lam < -mu, got lam={lam}, mu={mu}")
    if max_move is not None and not (math.isfinite(max_move) and max_move >= 0):
        raise InvalidInputError(f"max_move must be a finite distance >= 0 or None, got {max_move}")
    if iterations == 0 or max_move == 0:
        return mesh
    v0 = mesh.vertices.detach().cpu().double().numpy()
    faces = mesh.faces.cpu().numpy().astype(np.int64)
    n = len(v0)
    edges, counts = _edges(faces)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    degree = np.asarray(adj.sum(axis=1)).ravel()
    free = (degree > 0) & ~_fixed(n, edges, counts)
    # rows of the free vertices only: the fixed ones never move, so they need no update
    idx = np.flatnonzero(free)
    mean_nb = sp.diags(1.0 / degree[idx]) @ adj[idx]  # (free, V): the mean of the neighbours
    v = v0.copy()
    for _ in range(iterations):
        for step in (lam, mu):
            v[idx] += step * (mean_nb @ v - v[idx])
    if max_move is not None:
        d = v - v0
        norm = np.linalg.norm(d, axis=1, keepdims=True)
        v = v0 + d * np.minimum(1.0, max_move / np.maximum(norm, 1e-300))
    return Mesh(torch.as_tensor(v, dtype=mesh.vertices.dtype, device=mesh.vertices.device), mesh.faces)
