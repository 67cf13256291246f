"""Mesh extraction from an unsigned distance field given with its direction.

The field is a function ``displacement(q (Q, 3)) -> (Q, 3)``: the vector from each query to
its nearest surface point (PEIF's and NVF's output). Its norm is the unsigned distance (UDF)
and its direction the way to the surface. There is no inside or outside, so ordinary marching
cubes cannot run; instead (our own formulation of the pseudo-sign idea of MeshUDF/GeoUDF):

1. **Where.** Only grid nodes within a band around the input points are queried, and only
   cubes whose 8 corners were all queried are processed (the field is never evaluated far from
   the data).
2. **Which edges cross the surface.** An edge ``(a, b)`` is crossed when the displacements at
   its ends point in opposite directions (``⟨Δa, Δb⟩ < 0``: the ends lie on opposite sides)
   and ``|Δa| + |Δb| ≤ crossing_slack · |b − a|`` (a surface between them; near a medial axis,
   where directions also flip, the sum is much larger than the edge and nothing is made).
   The test is per edge, so every cube and tetrahedron that shares an edge agrees on it.
3. **Triangles.** Each cube is split into six tetrahedra around its main diagonal (Kuhn's
   decomposition, consistent across neighbouring cubes). With ``sign="global"`` (default) the
   active nodes first get inside/outside labels consistent over the whole band (the most
   confident spanning forest of the lattice edges' same-side / opposite-side evidence, see
   :func:`_global_labels`); a tetrahedron cuts the edges whose labels differ, and a triangle
   is kept only where its edges pass the ``|Δa| + |Δb|`` test (open surfaces stay open).
   Neighbouring tetrahedra then always agree, so a closed surface comes out closed: on the
   exact field of ABC part 00994122 (resolution 128) 3 pieces and 136 boundary edges against
   106 and 9,090 with the per-tetrahedron rule. ``sign="local"``: each tetrahedron's crossed
   edges are matched to the nearest of its 8 labellings (ties: fewer crossings), which leaves
   cracks wherever neighbours' nearest labellings disagree (near sharp edges, noisy fields).
   Either way a labelling gives no triangle, one, or a quad from a 16-entry table built here.
   ``fill_gaps=True`` completes cubes whose corners fall outside the band where the samples
   leave a gap (holes otherwise, on exact fields); off by default: it queries a learned
   field where it has no samples, and on ABC 00011084 with the network it cost CD-L1
   0.540 → 0.729 and F@1% 0.909 → 0.846.
4. **Where on the edge.** A vertex sits at ``t = |Δa| / (|Δa| + |Δb|)``, exact for planes.
   With ``project=True`` each vertex is then moved onto the surface: by the tangent planes the
   field gives at the edge's two end nodes where they agree (no new query), else by the
   field's own displacement at the vertex, and faces whose vertices remain farther than
   ``face_max_udf`` (default voxel/3, as NVF filters) are removed: no spurious faces where the
   field is unsure. That check costs a second query at the moved vertex, made only where the
   step was longer than ``face_max_udf / 16``: a field with Lipschitz constant 15 cannot fail
   it after a shorter step (a distance field has constant 1). A learned field has jumps (its
   K-NN patch changes); on ABC part 00011084 (resolution 128) this skips 67k of 221k checks,
   of which the skipped check would have failed 47 times; with the bound of a true distance
   field (steps up to ``face_max_udf / 2``) it would have skipped 179k and kept 2,282 failing
   vertices, costing 1.4 % CD-L1 and 0.004 F-score. ``projection="field"`` queries every
   vertex (the slower original rule).

Output vertices are shared between faces (one per crossed grid edge); faces of open surfaces
stay open. An unsigned field has no orientation: the windings come out consistent within each
tetrahedron only, and :func:`orient_faces` (which
:func:`~equivision.pipelines.reconstruct.reconstruct_with_field` applies) makes them
consistent across the mesh, outward per piece.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.geometry.unique import unique_pairs, unique_rows
from equivision.io.meshes import Mesh

DisplacementFn = Callable[[Tensor], Tensor]

# Lipschitz constant assumed of the field when deciding which projected vertices need a second
# query to check them (a distance field has 1; see the module doc for the measured margin).
_CHECK_LIPSCHITZ = 15.0

# Kuhn decomposition: corner c = x + 2y + 4z; each tetrahedron is a monotone path 0 → 7.
_AXIS_BIT = (1, 2, 4)
_TETS = np.array(
    [[0, _AXIS_BIT[p[0]], _AXIS_BIT[p[0]] + _AXIS_BIT[p[1]], 7] for p in itertools.permutations(range(3))]
)
_TET_EDGES = np.array([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each of the 64 crossed-edge patterns: the chosen labelling's triangles (as pairs of
    tet-edge indices, up to 2 triangles × 3 edges, −1 padded) and their count."""
    labelings = [np.array([(m >> i) & 1 for i in range(4)]) for m in range(8)]  # vertex 3 fixed 0
    cut_edges = [np.array([lab[a] != lab[b] for a, b in _TET_EDGES]) for lab in labelings]
    tris = -np.ones((64, 2, 3), dtype=np.int64)
    counts = np.zeros(64, dtype=np.int64)
    edge_index = {tuple(sorted(e)): i for i, e in enumerate(_TET_EDGES.tolist())}
    for pattern in range(64):
        bits = np.array([(pattern >> i) & 1 for i in range(6)], dtype=bool)
        best = min(range(8), key=lambda k: (int((cut_edges[k] != bits).sum()), int(cut_edges[k].sum())))
        lab = labelings[best]
        inside = [v for v in range(4) if lab[v] == 1]
        outside = [v for v in range(4) if lab[v] == 0]
        if len(inside) in (0, 4):
            continue
        if len(inside) in (1, 3):
            lone, others = (inside[0], outside) if len(inside) == 1 else (outside[0], inside)
            tris[pattern, 0] = [edge_index[tuple(sorted((lone, o)))] for o in others]
            counts[pattern] = 1
        else:
            a, b = inside
            c, d = outside
            quad = [edge_index[tuple(sorted(e))] for e in ((a, c), (a, d), (b, d), (b, c))]
            tris[pattern, 0] = [quad[0], quad[1], quad[2]]
            tris[pattern, 1] = [quad[0], quad[2], quad[3]]
            counts[pattern] = 2
    return tris, counts


_PATTERN_TRIS, _PATTERN_COUNTS = _build_tables()


@dataclass(frozen=True)
class ExtractionStats:
    """What an extraction did (for progress reports and benchmarks)."""

    queried_nodes: int
    active_cubes: int
    faces_before_filter: int
    faces: int
    voxel: float
    projected_by_field: int = 0
    """Vertices moved by a field query (all of them with ``projection="field"``)."""
    checked_by_field: int = 0
    """Of those, vertices whose step was longer than ``face_max_udf / 16``, checked by a second
    query at their new place. Field queries in all: ``queried_nodes + projected_by_field +
    checked_by_field``."""


@dataclass(frozen=True)
class SurfaceTopology:
    """How a triangle mesh hangs together (vertices at the same coordinates count as one)."""

    pieces: int
    """Connected components, faces joined through shared edges."""
    boundary_edges: int
    """Edges used by one face only (0 for a closed surface)."""
    nonmanifold_edges: int
    """Edges used by more than two faces."""


def _welded_edges(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The faces' edges with vertices at the same coordinates welded: the faces over welded
    ids ``(F, 3)``, their directed edges ``(3F, 2)`` (all first edges, then second, then third),
    each one's undirected edge id ``(3F,)`` and the number of faces on each edge."""
    f = mesh.faces.detach().cpu().numpy().astype(np.int64)
    _, _, vid = unique_rows(mesh.vertices.detach().cpu().double().numpy())
    f = vid[f]
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    edge_id, count = unique_pairs(np.sort(directed, axis=1), int(f.max()) + 1 if f.size else 1)
    return f, directed, edge_id, count


def _face_components(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Per face its piece (faces joined through shared edges; vertices at the same coordinates
    count as one) ``(F,)``, and the number of faces on each edge."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f, _, edge_id, count = _welded_edges(mesh)
    face_of = np.tile(np.arange(len(f)), 3)
    # faces and edges as one bipartite graph: faces sharing an edge share a component
    n_f = len(f)
    g = coo_matrix((np.ones(len(face_of)), (face_of, n_f + edge_id)), shape=(n_f + len(count),) * 2)
    _, comp = connected_components(g, directed=False)
    return np.unique(comp[:n_f], return_inverse=True)[1].reshape(-1), count


def surface_topology(mesh: Mesh) -> SurfaceTopology:
    """Pieces, boundary edges and non-manifold edges of ``mesh`` (faces ``(F, 3)``)."""
    if len(mesh.faces) == 0:
        return SurfaceTopology(0, 0, 0)
    comp, count = _face_components(mesh)
    return SurfaceTopology(int(comp.max()) + 1, int((count == 1).sum()), int((count > 2).sum()))


def drop_small_pieces(mesh: Mesh, min_fraction: float) -> Mesh:
    """``mesh`` without the pieces (as :func:`surface_topology` counts them) that hold fewer
    than ``min_fraction`` of its faces; unused vertices are dropped, the others keep their
    order. Nothing moves: only whole pieces go. PEIF's reconstructions use it at 0.001
    (``benchmarks/recon_small_pieces.py``: on every set CD-L1, NC and F@1 % improve and the
    pieces drop to one or two per shape)."""
    if not 0.0 <= min_fraction < 1.0:
        raise InvalidInputError(f"min_fraction must be in [0, 1), got {min_fraction}")
    if len(mesh.faces) == 0 or min_fraction == 0.0:
        return mesh
    comp, _ = _face_components(mesh)
    sizes = np.bincount(comp)
    return keep_faces(mesh, torch.from_numpy(sizes[comp] >= min_fraction * len(comp)))


def keep_faces(mesh: Mesh, keep: Tensor) -> Mesh:
    """``mesh`` with only the faces where ``keep (F,)`` (bool) is true; vertices no kept face
    uses are dropped, the others keep their order and place."""
    faces = mesh.faces[keep.to(mesh.faces.device)]
    used = torch.zeros(len(mesh.vertices), dtype=torch.bool, device=faces.device)
    used[faces.reshape(-1)] = True
    new_id = torch.cumsum(used.long(), 0) - 1
    return Mesh(mesh.vertices[used], new_id[faces])


def _active_nodes(points: Tensor, lo: float, voxel: float, res: int, band: float) -> np.ndarray:
    """Sorted flat ids of grid nodes within ``band`` of some input point.

    Candidates are the nodes of the voxels holding a point, dilated by ``ceil(band / voxel)``
    nodes on a dense boolean grid (separable, one pass per axis), then checked exactly by a
    KD-tree; the dense grid replaces enumerating a cube of offsets around every point."""
    from scipy.spatial import cKDTree

    p = points.detach().cpu().double().numpy()
    k = int(np.ceil(band / voxel))
    pad = k + 2  # a voxel outside the grid can still have nodes within the band inside it
    base = np.floor((p - lo) / voxel).astype(np.int64)
    base = base[((base >= -pad) & (base < res + pad)).all(1)] + pad
    size = res + 2 * pad
    occ = np.zeros((size, size, size), dtype=bool)
    occ[base[:, 0], base[:, 1], base[:, 2]] = True
    for axis in range(3):  # node n is a candidate if a marked voxel lies in n - k - 1 ... n + k
        src = np.moveaxis(occ, axis, 0)
        out = src.copy()
        for s in range(-k, k + 2):  # voxel v has nodes v - k ... v + k + 1 as candidates
            if s > 0:
                out[s:] |= src[:-s]
            elif s < 0:
                out[:s] |= src[-s:]
        occ = np.moveaxis(out, 0, axis)
    cand = occ[pad : pad + res, pad : pad + res, pad : pad + res]
    flat = np.flatnonzero(cand)
    if len(flat) == 0:
        return flat
    ijk = np.stack([flat // (res * res), (flat // res) % res, flat % res], 1)
    dist, _ = cKDTree(p).query(lo + ijk * voxel, k=1, workers=torch.get_num_threads())
    return flat[dist <= band]


def field_surface_points(
    displacement: DisplacementFn, *, bounds: tuple[float, float] = (-0.55, 0.55), resolution: int = 48,
    batch_size: int = 65536, dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Samples ``(M, 3)`` of the surface a displacement field places anywhere in the cube
    ``bounds``: the vertices of the field's mesh extracted on a coarse ``resolution³`` grid
    queried everywhere (``M`` = 0 when nothing crosses). The extraction's own test (the
    directions flip across an edge) decides where the surface is, not a threshold on
    ``|Δ|``: a field whose distances come out too small, as a global field's do, would
    otherwise put every node near the surface. Keep ``resolution`` coarse (48³ = 110k queries);
    the samples are about a coarse voxel apart."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4:
        raise InvalidInputError(f"resolution must be an integer >= 4, got {resolution!r}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        raise InvalidInputError(f"bounds must be (low, high) with low < high, got {bounds}")
    axis = torch.linspace(lo, hi, resolution, dtype=torch.float64)
    nodes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3).to(dtype)
    voxel = (hi - lo) / (resolution - 1)
    try:  # every node is within half a voxel of itself: the whole grid is queried
        mesh, _ = extract_mesh_udf(displacement, nodes, resolution=resolution, bounds=(lo, hi),
                                   band=0.5 * voxel, project=False, batch_size=batch_size)
    except DegenerateGeometryError:
        return torch.zeros(0, 3, dtype=dtype)
    return mesh.vertices.to(dtype)


def default_band(points: Tensor, voxel: float) -> float:
    """2.5 voxels, widened where the cloud is sparse (2 × the 90th percentile of the
    nearest-neighbour spacing), so that gaps between samples leave no holes."""
    from scipy.spatial import cKDTree

    p = points.detach().cpu().double().numpy()
    if len(p) < 2:
        return 2.5 * voxel
    d, _ = cKDTree(p).query(p, k=2, workers=torch.get_num_threads())
    return max(2.5 * voxel, 2.0 * float(np.quantile(d[:, 1], 0.9)))


def _plane_projection(xyz: Tensor, disp: Tensor, udf: Tensor, va: Tensor, vb: Tensor, t: Tensor,
                      verts: Tensor, voxel: float, plane_tol: float) -> tuple[Tensor, Tensor]:
    """Vertex steps onto the surface from the field already known at the edge's end nodes.

    Each end node ``a`` gives a tangent plane of the surface: through its closest point
    ``a + Δa`` with normal ``Δa / |Δa|``. The vertex moves by the ``t``-weighted mean of its
    projections on the two planes (exact for a plane, second order in the voxel for curved
    surfaces: the node's closest point lies within a voxel of the vertex). Where the two
    projections differ by more than ``plane_tol`` voxels, the normals by more than ~25°
    (cos < 0.9), or a node lies on the surface (no normal), the vertex is ``unsure`` and the
    caller queries the field there. Saves the two queries per vertex of ``"field"``, which at
    resolution 128 are most of the work. Returns ``(step (V, 3), unsure (V,))``."""
    na, nb = disp[va] / udf[va, None].clamp_min(1e-300), disp[vb] / udf[vb, None].clamp_min(1e-300)
    step_a = ((xyz[va] + disp[va] - verts) * na).sum(-1, keepdim=True) * na
    step_b = ((xyz[vb] + disp[vb] - verts) * nb).sum(-1, keepdim=True) * nb
    unsure = ((step_a - step_b).norm(dim=-1) > plane_tol * voxel) | ((na * nb).sum(-1) > -0.9)
    unsure |= (udf[va] <= 1e-9 * voxel) | (udf[vb] <= 1e-9 * voxel)
    return (1 - t)[:, None] * step_a + t[:, None] * step_b, unsure


def _forest_parity(m: int, ea: np.ndarray, eb: np.ndarray, cost: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Parities ``(m,)`` (0/1) of ``m`` nodes joined by edges ``(ea, eb)`` that each say "same"
    (``flip`` false) or "different", trusted in the order of ``cost`` (lowest first): the
    parities follow the minimum spanning forest, each tree's root at 0. Conflicting edges
    outside the forest are overruled."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

    g = coo_matrix((cost, (ea, eb)), shape=(m, m)).tocsr()
    tree = minimum_spanning_tree(g).tocoo()
    ta, tb = tree.row.astype(np.int64), tree.col.astype(np.int64)
    # parity of each tree edge, looked up by its (ordered) node pair
    key = np.minimum(ea, eb) * m + np.maximum(ea, eb)
    order = np.argsort(key)
    tkey = np.minimum(ta, tb) * m + np.maximum(ta, tb)
    tflip = flip[order[np.searchsorted(key[order], tkey)]]
    # parity from one root per tree: a virtual node m joined to every tree's root makes one
    # breadth-first search; then pointer jumping sums the flips to the root (log depth)
    _, comp = connected_components(tree, directed=False)
    roots = np.unique(comp, return_index=True)[1]
    ga = np.concatenate([ta, np.full(len(roots), m)])
    gb = np.concatenate([tb, roots])
    adj = coo_matrix((np.ones(len(ga)), (ga, gb)), shape=(m + 1, m + 1)).tocsr()
    seq, pred = breadth_first_order(adj, m, directed=False, return_predecessors=True)
    kids = seq[1:]
    parent = np.arange(m + 1)
    parent[kids] = pred[kids]
    parent[roots] = roots
    par = np.zeros(m + 1, dtype=np.int8)
    tk = np.sort(tkey)
    tflip_sorted = tflip[np.argsort(tkey)]
    inner = kids[~np.isin(kids, roots)]
    pk = np.minimum(inner, parent[inner]) * m + np.maximum(inner, parent[inner])
    par[inner] = tflip_sorted[np.searchsorted(tk, pk)]
    anc = parent
    while True:
        moved = anc != anc[anc]
        if not moved.any():
            break
        par = par ^ par[anc]
        anc = anc[anc]
    return par[:m]


def orient_faces(mesh: Mesh) -> Mesh:
    """``mesh`` with its faces ``(F, 3)`` ordered consistently: across every edge two faces
    share, they run in opposite directions, and each piece's normals point outward (its signed
    volume about its centroid is positive; for an open piece, the side that gives the larger
    signed volume). Vertices do not move and faces only change their winding, so a rotation
    of the input rotates the output; a reflection flips it, as it must.

    The windings follow a spanning forest of the faces joined through edges used by exactly
    two faces (:func:`_forest_parity`); a piece that is not orientable (a Möbius-like
    region of a noisy field) keeps the forest's choice, with the conflicting edges left
    inconsistent."""
    if len(mesh.faces) == 0:
        return mesh
    f = mesh.faces.detach().cpu().numpy().astype(np.int64)
    v = mesh.vertices.detach().cpu().double().numpy()
    _, directed, edge_id, count = _welded_edges(mesh)
    ascending = directed[:, 0] < directed[:, 1]
    face_of = np.tile(np.arange(len(f)), 3)
    two = count[edge_id] == 2
    order = np.argsort(edge_id[two], kind="stable")
    pairs_f = face_of[two][order].reshape(-1, 2)  # the two faces of each manifold edge
    pairs_up = ascending[two][order].reshape(-1, 2)
    # two faces crossing an edge in the same direction need opposite windings
    flip = pairs_up[:, 0] == pairs_up[:, 1]
    ok = pairs_f[:, 0] != pairs_f[:, 1]
    parity = _forest_parity(len(f), pairs_f[ok, 0], pairs_f[ok, 1], np.ones(int(ok.sum())), flip[ok])
    fo = np.where(parity[:, None] == 1, f[:, ::-1], f)
    # outward per piece: pieces as the forest joined them
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(int(ok.sum())), (pairs_f[ok, 0], pairs_f[ok, 1])), shape=(len(f), len(f)))
    _, piece = connected_components(g, directed=False)
    tri = v[fo]
    centre = np.zeros((piece.max() + 1, 3))
    np.add.at(centre, piece, tri.mean(1))
    centre /= np.bincount(piece)[:, None]
    rel = tri - centre[piece][:, None]
    vol = np.bincount(piece, weights=np.einsum("ij,ij->i", rel[:, 0], np.cross(rel[:, 1], rel[:, 2])))
    fo = np.where((vol < 0)[piece][:, None], fo[:, ::-1], fo)
    return Mesh(mesh.vertices, torch.as_tensor(np.ascontiguousarray(fo), dtype=mesh.faces.dtype,
                                               device=mesh.faces.device))


def _global_labels(nodes: np.ndarray, res: int, disp: Tensor, udf: Tensor, voxel: float,
                   crossing_slack: float) -> np.ndarray:
    """Inside/outside labels ``(M,)`` of the active nodes, consistent across the whole band.

    Each lattice edge between active neighbours says "same side" (directions agree, or they
    disagree only across a medial axis: far from the surface) or "opposite sides" (the local
    crossing test), with a confidence ``|cos|`` of the angle between the two directions. The
    labels follow the most confident spanning forest of these edges (a maximum spanning tree,
    as Kruskal's order resolves conflicts: the noisy edges a learned field has near its jumps
    lose against the many clean ones around them). Every tetrahedron then cuts exactly the
    edges whose end labels differ, so neighbouring tetrahedra agree and the surface closes
    wherever the field is a distance field of a closed surface."""
    m = len(nodes)
    ea_l, eb_l = [], []
    for step in (res * res, res, 1):  # +x, +y, +z neighbours (x is the slowest index)
        axis_ok = ((nodes // step) % res) < res - 1
        nb = nodes[axis_ok] + step
        pos = np.searchsorted(nodes, nb).clip(0, m - 1)
        hit = nodes[pos] == nb
        ea_l.append(np.flatnonzero(axis_ok)[hit])
        eb_l.append(pos[hit])
    ea, eb = np.concatenate(ea_l), np.concatenate(eb_l)
    d = disp.numpy()
    u = udf.numpy()
    ua, ub = np.maximum(u[ea], 1e-300), np.maximum(u[eb], 1e-300)
    cos = np.einsum("ij,ij->i", d[ea], d[eb]) / (ua * ub)
    near = u[ea] + u[eb] <= crossing_slack * voxel
    flip = (cos < 0) & near
    # cost of trusting an edge: low for confident ones; medial-axis edges (opposite directions
    # far from the surface) are "same side" but weak evidence
    cost = np.where((cos >= 0) | near, 1.0 - np.abs(cos), 1.0) + 1e-6
    return _forest_parity(m, ea, eb, cost, flip)


def extract_mesh_udf(
    displacement: DisplacementFn,
    points: Tensor,
    *,
    resolution: int = 128,
    bounds: tuple[float, float] = (-0.55, 0.55),
    band: float | None = None,
    crossing_slack: float = 1.1,
    project: bool = True,
    projection: str = "adaptive",
    plane_tol: float = 0.2,
    face_max_udf: float | None = None,
    batch_size: int = 65536,
    sign: str = "global",
    fill_gaps: bool = False,
    gate_rule: str = "near",
    band_points: Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Mesh, ExtractionStats]:
    """Extract a triangle mesh from the displacement field near ``points (N, 3)``.

    Args:
        displacement: ``(Q, 3) -> (Q, 3)``, vector from each query to the nearest surface point.
        points: the input cloud; only nodes within ``band`` of it are queried.
        resolution: grid nodes per axis over ``bounds`` (a cube), e.g. 128 or 256.
        band: query radius around the points (default: 2.5 voxels, more for sparse clouds).
        crossing_slack: an edge is crossed only if ``|Δa| + |Δb| ≤ slack · edge length``.
        project: move vertices onto the surface, then drop faces with a vertex farther than
            ``face_max_udf`` (default voxel/3).
        projection: ``"field"``: every vertex moves by a field query at it and is checked by
            another at its new place (two queries per vertex); ``"adaptive"`` (default): the
            same only for vertices where the tangent planes of the edge's two end nodes
            disagree; the others move onto those planes (see :func:`_plane_projection`).
        plane_tol: the planes agree when their projections of the vertex are within
            ``plane_tol`` voxels and their normals within ~25°.
        batch_size: queries per call of ``displacement``.
        sign: ``"global"`` (labels consistent over the band, closed surfaces close) or
            ``"local"`` (the per-tetrahedron pseudo-sign).
        fill_gaps: query the missing corners of cubes near the surface (exact fields; see the
            module doc).
        gate_rule: with the global sign, which label cuts make vertices: ``"near"`` (the
            ``|Δa| + |Δb|`` test), ``"crossed"`` (also opposite directions: fewer, cleaner
            faces from a noisy field, more holes) or ``"none"``.
        band_points: ``(M, 3)``: query the nodes within ``band`` of these instead of
            ``points`` (which still set the default band), e.g. the input cloud together with
            :func:`field_surface_points`, for a field that places surface where the cloud has
            no points (a global field completing a partial cloud).
        progress: optional ``callback(done, total)`` over the field queries.

    Returns:
        ``(mesh, stats)``; the mesh may be empty only if nothing crosses (raises then).
    """
    check_points(points, "points", 3)
    if points.ndim != 2:
        raise InvalidInputError(f"points must be (N, 3), got {tuple(points.shape)}")
    if resolution < 4:
        raise InvalidInputError(f"resolution must be >= 4, got {resolution}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        raise InvalidInputError(f"bounds must be (low, high) with low < high, got {bounds}")
    if projection not in ("adaptive", "field"):
        raise InvalidInputError(f"projection must be 'adaptive' or 'field', got {projection!r}")
    if not plane_tol >= 0:
        raise InvalidInputError(f"plane_tol must be >= 0, got {plane_tol}")
    if sign not in ("global", "local"):
        raise InvalidInputError(f"sign must be 'global' or 'local', got {sign!r}")
    if gate_rule not in ("near", "crossed", "none"):
        raise InvalidInputError(f"gate_rule must be 'near', 'crossed' or 'none', got {gate_rule!r}")
    voxel = (hi - lo) / (resolution - 1)
    if band is None:
        band = default_band(points, voxel)
    face_max = voxel / 3 if face_max_udf is None else float(face_max_udf)
    res = resolution
    if band_points is not None:
        check_points(band_points, "band_points", 3)
        if band_points.ndim != 2:
            raise InvalidInputError(f"band_points must be (M, 3), got {tuple(band_points.shape)}")
    nodes = _active_nodes(points if band_points is None else band_points, lo, voxel, res, band)
    if len(nodes) == 0:
        raise DegenerateGeometryError(f"no input point lies inside the bounds {bounds}")
    ijk = np.stack([nodes // (res * res), (nodes // res) % res, nodes % res], 1)
    xyz = torch.as_tensor(lo + ijk * voxel, dtype=torch.float64)

    def query(q: Tensor) -> Tensor:
        out = []
        for s in range(0, len(q), batch_size):
            d = displacement(q[s : s + batch_size].to(points.dtype).to(points.device))
            if d.shape != (min(batch_size, len(q) - s), 3):
                raise InvalidInputError(f"displacement returned {tuple(d.shape)}, expected (Q, 3)")
            out.append(d.detach().double().cpu())
            if progress is not None:
                progress(min(s + batch_size, len(q)), len(q))
        return torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.float64)

    disp = query(xyz)
    if not bool(torch.isfinite(disp).all()):
        raise InvalidInputError("the displacement field returned NaN or infinite values")
    udf = disp.norm(dim=-1)
    if fill_gaps:
        # a corner of a cube the surface passes through can lie beyond the band where the
        # samples leave a gap; the cube would be skipped, leaving a hole. Such a cube has a
        # corner within half its diagonal of the surface: the missing nodes of the cubes
        # around those corners are queried too (only there: the band stays narrow elsewhere).
        close = nodes[(udf <= np.sqrt(3) / 2 * voxel).numpy()]
        ci = np.stack([close // (res * res), (close // res) % res, close % res], 1)
        off = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
        nb = (ci[:, None] + off[None]).reshape(-1, 3)
        nb = nb[((nb >= 0) & (nb < res)).all(1)]
        flat = np.unique(nb[:, 0] * res * res + nb[:, 1] * res + nb[:, 2])
        extra = flat[~np.isin(flat, nodes, assume_unique=True)]
        if len(extra):
            e_ijk = np.stack([extra // (res * res), (extra // res) % res, extra % res], 1)
            e_xyz = torch.as_tensor(lo + e_ijk * voxel, dtype=torch.float64)
            e_disp = query(e_xyz)
            if not bool(torch.isfinite(e_disp).all()):
                raise InvalidInputError("the displacement field returned NaN or infinite values")
            order = np.argsort(np.concatenate([nodes, extra]), kind="stable")
            nodes = np.concatenate([nodes, extra])[order]
            ijk = np.concatenate([ijk, e_ijk])[order]
            xyz = torch.cat([xyz, e_xyz])[torch.as_tensor(order)]
            disp = torch.cat([disp, e_disp])[torch.as_tensor(order)]
            udf = disp.norm(dim=-1)

    # cubes whose 8 corners are all active; corner c = x + 2y + 4z
    corner_off = np.array([(c & 1) * res * res + ((c >> 1) & 1) * res + ((c >> 2) & 1) for c in range(8)])
    inner = (ijk < res - 1).all(1)
    cand = nodes[inner]
    corners_flat = cand[:, None] + corner_off[None]
    pos = np.searchsorted(nodes, corners_flat).clip(0, len(nodes) - 1)  # nodes are sorted
    pos = np.where(nodes[pos] == corners_flat, pos, -1)
    full = (pos >= 0).all(1)
    cubes = torch.as_tensor(pos[full])  # (C, 8) indices into the active nodes
    # quick reject: a cube far from the surface cannot contain a crossing
    cubes = cubes[udf[cubes].amin(1) <= np.sqrt(3) * voxel * crossing_slack]
    tets = cubes[:, torch.as_tensor(_TETS)].reshape(-1, 4)  # (T, 4)
    ea = tets[:, torch.as_tensor(_TET_EDGES[:, 0])]  # (T, 6)
    eb = tets[:, torch.as_tensor(_TET_EDGES[:, 1])]
    length = (xyz[ea] - xyz[eb]).norm(dim=-1)
    opposite = (disp[ea] * disp[eb]).sum(-1) < 0
    near = udf[ea] + udf[eb] <= crossing_slack * length
    crossed = opposite & near
    if sign == "global":
        labels = torch.as_tensor(_global_labels(nodes, res, disp, udf, voxel, crossing_slack))
        cut = labels[ea] != labels[eb]
        gate = {"near": near, "crossed": crossed, "none": torch.ones_like(near)}[gate_rule]
        # where the labels miss a crossing the local test is sure of (directions within ~25° of
        # opposite: an open sheet, whose labels cannot be consistent around its rim, is cut
        # through somewhere), the tetrahedron keeps the local pattern
        cos = (disp[ea] * disp[eb]).sum(-1) / (udf[ea] * udf[eb]).clamp_min(1e-300)
        local = (crossed & ~cut & (cos < -0.9)).any(1)
        cut = torch.where(local[:, None], crossed, cut)
        pattern = (cut.long() * (2 ** torch.arange(6))).sum(1)
        ungated = cut & ~gate & ~local[:, None]
    else:
        pattern = (crossed.long() * (2 ** torch.arange(6))).sum(1)
    n_tri = torch.as_tensor(_PATTERN_COUNTS)[pattern]
    keep = n_tri > 0
    tets_ea, tets_eb, pattern, n_tri = ea[keep], eb[keep], pattern[keep], n_tri[keep]
    tri_edges = torch.as_tensor(_PATTERN_TRIS)[pattern]  # (T', 2, 3) tet-edge ids
    second = n_tri == 2
    tri_edges = torch.cat([tri_edges[:, 0], tri_edges[second, 1]], 0)
    if sign == "global":
        bad = ungated[keep]
        bad = torch.cat([bad, bad[second]], 0).gather(1, tri_edges).any(1)
    ta = torch.cat([tets_ea, tets_ea[second]], 0).gather(1, tri_edges)  # (F, 3) node a of each edge
    tb = torch.cat([tets_eb, tets_eb[second]], 0).gather(1, tri_edges)
    if sign == "global":
        ta, tb = ta[~bad], tb[~bad]
    if len(ta) == 0:
        raise DegenerateGeometryError(
            "no surface crossing found: the field never changes direction between neighbouring "
            "grid nodes near the points (too coarse a resolution, or not a distance field)"
        )
    # one vertex per grid edge (unordered node pair), shared by every face using that edge
    lo_n, hi_n = torch.minimum(ta, tb), torch.maximum(ta, tb)
    keys = lo_n * len(nodes) + hi_n
    uniq, inverse = torch.unique(keys.reshape(-1), return_inverse=True)
    va, vb = uniq // len(nodes), uniq % len(nodes)
    t = (udf[va] / (udf[va] + udf[vb]).clamp_min(1e-300)).clamp(0, 1)
    verts = xyz[va] + t[:, None] * (xyz[vb] - xyz[va])
    faces = inverse.reshape(-1, 3)
    faces_before = len(faces)
    n_verts_queried = n_checked = 0
    if project:
        if projection == "adaptive":
            step, unsure = _plane_projection(xyz, disp, udf, va, vb, t, verts, voxel, plane_tol)
        else:
            step, unsure = torch.zeros_like(verts), torch.ones(len(verts), dtype=torch.bool)
        bad_v = torch.zeros(len(verts), dtype=torch.bool)
        if bool(unsure.any()):
            n_verts_queried = int(unsure.sum())
            d_v = query(verts[unsure])
            step[unsure] = d_v
            # the check |Δ(v + Δv)| ≤ face_max cannot fail when |Δv| ≤ face_max / (1 + L) for
            # a field with Lipschitz constant L (|Δ(v + Δv)| ≤ |Δv| + L |Δv|); L = 15 leaves
            # margin for a learned field's jumps: only the other vertices are checked by a
            # second query (see the module doc)
            far = unsure.clone()
            far[unsure] = d_v.norm(dim=-1) > face_max / (1 + _CHECK_LIPSCHITZ)
            n_checked = int(far.sum())
            if n_checked:
                bad_v[far] = query(verts[far] + step[far]).norm(dim=-1) > face_max
        verts = verts + step
        faces = faces[~bad_v[faces].any(1)]
    # drop degenerate faces and unreferenced vertices
    tri = verts[faces]
    area2 = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    faces = faces[area2 > 1e-14]
    used, remap = torch.unique(faces.reshape(-1), return_inverse=True)
    mesh = Mesh(verts[used].to(points.dtype), remap.reshape(-1, 3))
    if len(mesh.faces) == 0:
        raise DegenerateGeometryError("every extracted face was farther than face_max_udf from the surface")
    stats = ExtractionStats(len(nodes), len(cubes), faces_before, len(mesh.faces), voxel,
                            n_verts_queried, n_checked)
    return mesh, stats
