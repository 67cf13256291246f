"""Closing the small holes of a reconstructed mesh where the input points cover them.

A learned unsigned field leaves small holes where its crossing evidence is frustrated (no
inside/outside labelling of a lattice square satisfies all its edges; ``benchmarks/RESULTS.md``,
"Where the boundary edges come from"). Such a hole is a short simple boundary loop in the
middle of sampled surface. :func:`fill_small_holes` closes it with the minimum-area
triangulation of the loop (no new vertex, nothing existing moves) and keeps the fill only
where it looks like the missing surface:

* the loop has at most ``max_edges`` edges, and every one of its vertices is on exactly one
  boundary loop (a loop through a vertex where boundaries meet is left alone);
* the fill reaches no farther from the input points than its rim already is, give or take
  ``max_gap``: every probe (each triangle's centre and the midpoints between the centre and
  its corners) lies within ``d_rim + max_gap`` of an input point, ``d_rim`` the largest
  distance of a loop vertex from the points. An opening the data do not cover (the rim of a
  sheet, the mouth of a tube) stays open: its rim is on the points and its middle is not;
* across each loop edge the fill continues the surface: the cosine between the normal of the
  existing face and of the fill triangle on that edge is at least ``min_cosine`` on average
  (the outer rim of a flat sheet would be covered by a fill folded back onto the sheet, cosine
  −1);
* no diagonal of the fill is already an edge of the mesh (it would become non-manifold): the
  least-area triangulation without such diagonals is taken, and the loop stays open when there
  is none.

The fill's windings follow the loop's faces, so a consistently wound mesh stays consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import InvalidInputError
from equivision.geometry.unique import unique_pairs, unique_rows
from equivision.io.meshes import Mesh

__all__ = ["HoleFilling", "boundary_loops", "fill_small_holes", "min_area_triangulation"]


@dataclass(frozen=True)
class HoleFilling:
    """What :func:`fill_small_holes` did: boundary loops found (``loops``), ``filled``, and
    those left open because they were too long, touched another loop, lay off the points,
    folded back or would have made a non-manifold edge; ``faces_added``."""

    loops: int
    filled: int
    too_long: int
    not_simple: int
    off_points: int
    folded: int
    non_manifold: int
    faces_added: int


def min_area_triangulation(vertices: np.ndarray, forbidden: np.ndarray | None = None) -> np.ndarray | None:
    """Triangles ``(n − 2, 3)`` (indices into the polygon) of the triangulation of the closed 3D
    polygon ``vertices`` ``(n, 3)`` with the least total area, by dynamic programming over
    the polygon's sub-chains (O(n³), vectorised over the chains of one length). Each triangle
    ``(i, k, j)`` has ``i < k < j``, so it runs the polygon's way round. ``forbidden`` ``(n, n)``
    bool (symmetric; ``[i, j]`` for ``i < j`` is read): diagonals the triangulation may not
    use; ``None`` is returned when every triangulation uses one."""
    v = np.asarray(vertices, dtype=np.float64)
    n = len(v)
    if v.ndim != 2 or v.shape[1] != 3 or n < 3:
        raise InvalidInputError(f"a polygon needs (n >= 3, 3) vertices, got shape {v.shape}")
    area = np.full((n, n), np.inf)  # area[i, j]: least area of the chain i..j closed by (i, j)
    best = np.full((n, n), -1, dtype=np.int64)
    idx = np.arange(n - 1)
    area[idx, idx + 1] = 0.0
    for d in range(2, n):
        i = np.arange(n - d)[:, None]
        j = i + d
        k = i + np.arange(1, d)[None, :]  # (n - d, d - 1)
        tri = 0.5 * np.linalg.norm(np.cross(v[k] - v[i], v[j] - v[i]), axis=-1)
        cost = area[i, k] + area[k, j] + tri
        arg = cost.argmin(1)
        rows = np.arange(n - d)
        area[rows, rows + d] = cost[rows, arg]
        best[rows, rows + d] = k[rows, arg]
        if forbidden is not None and d < n - 1:  # (0, n − 1) is the polygon's own side
            area[rows, rows + d] = np.where(forbidden[rows, rows + d], np.inf, area[rows, rows + d])
    if not np.isfinite(area[0, n - 1]):
        return None
    out: list[tuple[int, int, int]] = []
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        k = int(best[i, j])
        out.append((i, k, j))
        stack += [(i, k), (k, j)]
    return np.array(out, dtype=np.int64)


def _weld(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of the welded vertices ``(W, 3)`` (float64), the faces over them ``(F, 3)``
    and, per welded vertex, one original vertex with its position."""
    v = mesh.vertices.detach().cpu().double().numpy()
    uniq, first, vid = unique_rows(v)
    return uniq, vid[mesh.faces.detach().cpu().numpy().astype(np.int64)], first


def boundary_loops(faces: np.ndarray) -> tuple[list[np.ndarray], int]:
    """The simple boundary loops of a mesh with welded vertex ids ``faces`` ``(F, 3)``, each as
    its vertices in the direction of its faces' boundary edges, and the number of boundary
    components that are not simple loops (some vertex with more than one boundary edge out)."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = int(faces.max()) + 1
    eid, count = unique_pairs(np.sort(directed, axis=1), n)
    bnd = directed[count[eid] == 1]
    if len(bnd) == 0:
        return [], 0
    out_deg = np.bincount(bnd[:, 0], minlength=n)
    in_deg = np.bincount(bnd[:, 1], minlength=n)
    nxt = np.full(n, -1, dtype=np.int64)
    nxt[bnd[:, 0]] = bnd[:, 1]
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(bnd)), (bnd[:, 0], bnd[:, 1])), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    on = np.unique(bnd)
    bad_comp = set(comp[on[(out_deg[on] != 1) | (in_deg[on] != 1)]].tolist())
    loops: list[np.ndarray] = []
    seen = np.zeros(n, dtype=bool)
    for s in on.tolist():
        if seen[s] or comp[s] in bad_comp:
            continue
        loop = [s]
        seen[s] = True
        u = int(nxt[s])
        while u != s:
            loop.append(u)
            seen[u] = True
            u = int(nxt[u])
        loops.append(np.array(loop, dtype=np.int64))
    return loops, len(bad_comp)


def _normals(p: np.ndarray) -> np.ndarray:
    n = np.cross(p[..., 1, :] - p[..., 0, :], p[..., 2, :] - p[..., 0, :])
    return n / (np.linalg.norm(n, axis=-1, keepdims=True) + 1e-300)


def fill_small_holes(mesh: Mesh, points: Tensor, *, max_edges: int, max_gap: float,
                     min_cosine: float = 0.5) -> tuple[Mesh, HoleFilling]:
    """``mesh`` with its small holes closed where ``points`` ``(N, 3)`` cover them (see the
    module doc for the rules), and what was done. ``max_gap`` is a distance in the mesh's
    units. Existing vertices and faces are unchanged and keep their order; the fill's faces
    come after them and use existing vertices only."""
    from scipy.spatial import cKDTree

    if isinstance(max_edges, bool) or not isinstance(max_edges, int) or max_edges < 3:
        raise InvalidInputError(f"max_edges must be an integer >= 3, got {max_edges!r}")
    if not (np.isfinite(max_gap) and max_gap > 0):
        raise InvalidInputError(f"max_gap must be a positive distance, got {max_gap!r}")
    if not -1.0 <= min_cosine <= 1.0:
        raise InvalidInputError(f"min_cosine must lie in [-1, 1], got {min_cosine!r}")
    check_points(points, "points")
    if points.ndim != 2:
        raise InvalidInputError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if len(mesh.faces) == 0:
        return mesh, HoleFilling(0, 0, 0, 0, 0, 0, 0, 0)
    pos, faces, first = _weld(mesh)
    loops, not_simple = boundary_loops(faces)
    # in the mesh's own vertex order (welded ids follow the coordinates, hence the pose): each
    # loop from its lowest-numbered vertex, the loops by it, so every pose gets the same fill
    loops = [np.roll(lp, -int(np.argmin(first[lp]))) for lp in loops]
    loops.sort(key=lambda lp: int(first[lp[0]]))
    w = len(pos)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    face_of = np.tile(np.arange(len(faces)), 3)
    lo, hi = np.minimum(directed[:, 0], directed[:, 1]), np.maximum(directed[:, 0], directed[:, 1])
    edge_keys = np.unique(lo * w + hi)  # every undirected edge of the mesh, as a sorted key
    # the existing face on each boundary edge (a, b), for the continuation test
    on_loop = np.zeros(w, dtype=bool)
    for loop in loops:
        on_loop[loop] = True
    sel = on_loop[directed[:, 0]] & on_loop[directed[:, 1]]
    edge_face = {(int(a), int(b)): int(f) for (a, b), f in zip(directed[sel], face_of[sel], strict=True)}
    tree = cKDTree(points.detach().cpu().double().numpy())

    def face_n_of(f: int) -> np.ndarray:
        return _normals(pos[faces[f]][None])[0]

    counts = {"too_long": 0, "off_points": 0, "folded": 0, "non_manifold": 0}
    new: list[np.ndarray] = []
    for loop in loops:
        m = len(loop)
        if m > max_edges:
            counts["too_long"] += 1
            continue
        poly = loop[::-1]  # the fill runs against the loop's faces: it holds (b, a) for their (a, b)
        # a diagonal that is an edge already would be non-manifold (loops share no vertex, so
        # no two fills share a diagonal)
        keys = np.minimum(poly[:, None], poly[None]) * w + np.maximum(poly[:, None], poly[None])
        at = np.searchsorted(edge_keys, keys).clip(max=len(edge_keys) - 1)
        local = min_area_triangulation(pos[poly], edge_keys[at] == keys)
        if local is None:
            counts["non_manifold"] += 1
            continue
        tri = poly[local]
        corners = pos[tri]  # (T, 3, 3)
        centre = corners.mean(1, keepdims=True)
        probes = np.concatenate([centre, 0.5 * (centre + corners)], 1).reshape(-1, 3)
        if tree.query(probes)[0].max() > tree.query(pos[loop])[0].max() + max_gap:
            counts["off_points"] += 1
            continue
        tri_n = _normals(corners)
        # the fill triangle on each rim side (b, a) against the existing face holding (a, b)
        side_tri = {}
        for r, (x, y, z) in enumerate(tri.tolist()):
            side_tri[(x, y)] = side_tri[(y, z)] = side_tri[(z, x)] = r
        cos = [float(tri_n[side_tri[(int(loop[(i + 1) % m]), int(loop[i]))]]
                     @ face_n_of(edge_face[(int(loop[i]), int(loop[(i + 1) % m]))]))
               for i in range(m)]
        if np.mean(cos) < min_cosine:
            counts["folded"] += 1
            continue
        new.append(tri)
    added = np.concatenate(new) if new else np.zeros((0, 3), dtype=np.int64)
    out_faces = torch.cat([mesh.faces, torch.from_numpy(first[added]).to(mesh.faces)])
    report = HoleFilling(len(loops) + not_simple, len(new), counts["too_long"], not_simple,
                         counts["off_points"], counts["folded"], counts["non_manifold"], len(added))
    return Mesh(mesh.vertices, out_faces), report
