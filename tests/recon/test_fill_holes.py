"""Closing small holes: the minimum-area triangulation against brute force over every
triangulation, holes in a sphere closed with consistent windings and nothing existing moved,
openings the points do not cover (a tube's mouth) or that would fold back (a sheet's rim) left
open, loops through a shared vertex left alone, bad arguments refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from _recon_fields import sphere_field

from equivision.errors import InvalidInputError
from equivision.geometry import sample_surface_uniform
from equivision.io import Mesh
from equivision.recon.extract import keep_faces, surface_topology
from equivision.recon.holes import boundary_loops, fill_small_holes, min_area_triangulation


def _all_triangulations(i: int, j: int) -> list[list[tuple[int, int, int]]]:
    """Every triangulation of the polygon chain i..j closed by (i, j) (slow reference)."""
    if j - i < 2:
        return [[]]
    out = []
    for k in range(i + 1, j):
        for left in _all_triangulations(i, k):
            for right in _all_triangulations(k, j):
                out.append([*left, (i, k, j), *right])
    return out


def _area(v: np.ndarray, tris) -> float:
    t = np.asarray(tris)
    cross = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    return float(0.5 * np.linalg.norm(cross, axis=1).sum())


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_min_area_triangulation_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    v = np.stack([np.cos(ang), np.sin(ang), 0.3 * rng.standard_normal(n)], 1)  # a bumpy loop
    tri = min_area_triangulation(v)
    assert tri.shape == (n - 2, 3) and (tri[:, 0] < tri[:, 1]).all() and (tri[:, 1] < tri[:, 2]).all()
    best = min(_area(v, t) for t in _all_triangulations(0, n - 1))
    assert _area(v, tri) == pytest.approx(best, rel=1e-12)
    # every polygon side is used by exactly one triangle
    sides = {tuple(sorted(e)) for t in tri.tolist() for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))}
    assert all(tuple(sorted((i, (i + 1) % n))) in sides for i in range(n))


def test_forbidden_diagonals_are_avoided_or_none_is_returned() -> None:
    rng = np.random.default_rng(9)
    ang = np.sort(rng.uniform(0, 2 * math.pi, 7))
    v = np.stack([np.cos(ang), np.sin(ang), 0.3 * rng.standard_normal(7)], 1)
    free = min_area_triangulation(v)
    diag = next((int(i), int(j)) for i, _, j in free.tolist() if j - i not in (1, 6))  # one it used
    forbidden = np.zeros((7, 7), dtype=bool)
    forbidden[diag] = forbidden[diag[::-1]] = True
    tri = min_area_triangulation(v, forbidden)
    allowed = [t for t in _all_triangulations(0, 6)
               if not any({diag} & {(a, c), (a, b), (b, c)} for a, b, c in t)]
    assert not any(diag in {(a, c), (a, b), (b, c)} for a, b, c in tri.tolist())
    assert _area(v, tri) == pytest.approx(min(_area(v, t) for t in allowed), rel=1e-12)
    square = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    both = np.zeros((4, 4), dtype=bool)
    both[0, 2] = both[1, 3] = True  # a quad has two triangulations, one per diagonal
    assert min_area_triangulation(square, both) is None


def test_min_area_triangulation_refuses_bad_polygons() -> None:
    with pytest.raises(InvalidInputError):
        min_area_triangulation(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError):
        min_area_triangulation(np.zeros((5, 2)))


def _sphere() -> Mesh:
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=3))


def _without_rings(mesh: Mesh, centres: list[int]) -> Mesh:
    f = mesh.faces
    drop = torch.zeros(len(f), dtype=torch.bool)
    for c in centres:
        drop |= (f == c).any(1)
    return keep_faces(mesh, ~drop)


def _consistent(mesh: Mesh) -> bool:
    f = mesh.faces.numpy()
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    return len(np.unique(directed, axis=0)) == len(directed)  # no half-edge twice: windings agree


def test_small_holes_in_a_sphere_are_closed_and_nothing_moves() -> None:
    full = _sphere()
    pts, _ = sample_surface_uniform(full, 20_000, seed=0)
    holed = _without_rings(full, [0, 40, 100])  # three one-ring holes of 5 or 6 edges
    assert surface_topology(holed).boundary_edges > 0
    out, rep = fill_small_holes(holed, pts, max_edges=8, max_gap=0.02)
    assert rep.loops == 3 and rep.filled == 3 and rep.faces_added == len(out.faces) - len(holed.faces)
    topo = surface_topology(out)
    assert (topo.pieces, topo.boundary_edges, topo.nonmanifold_edges) == (1, 0, 0)
    assert torch.equal(out.vertices, holed.vertices)
    assert torch.equal(out.faces[: len(holed.faces)], holed.faces)
    assert _consistent(out)
    # the filled sphere is as big as the original, less the flat caps' sag
    assert trimesh.Trimesh(out.vertices.numpy(), out.faces.numpy()).area == pytest.approx(
        trimesh.Trimesh(full.vertices.numpy(), full.faces.numpy()).area, rel=2e-3)


def test_long_loops_stay_open() -> None:
    full = _sphere()
    pts, _ = sample_surface_uniform(full, 20_000, seed=0)
    cap = keep_faces(full, torch.from_numpy(full.vertices[full.faces].mean(1)[:, 2].numpy() < 0.8))
    n_edges = surface_topology(cap).boundary_edges
    out, rep = fill_small_holes(cap, pts, max_edges=n_edges - 1, max_gap=1.0)
    assert (rep.loops, rep.filled, rep.too_long) == (1, 0, 1) and out.faces.shape == cap.faces.shape
    out, rep = fill_small_holes(cap, pts, max_edges=n_edges, max_gap=1.0)
    assert rep.filled == 1 and surface_topology(out).boundary_edges == 0 and _consistent(out)


def test_a_tube_mouth_the_points_do_not_cover_stays_open() -> None:
    tube = trimesh.creation.cylinder(radius=0.5, height=2.0, sections=16)
    n = tube.face_normals
    wall = keep_faces(Mesh.from_trimesh(tube), torch.from_numpy(np.abs(n[:, 2]) < 0.5))  # no caps
    pts, _ = sample_surface_uniform(wall, 5_000, seed=1)
    assert surface_topology(wall).boundary_edges == 32
    out, rep = fill_small_holes(wall, pts, max_edges=64, max_gap=0.05)
    assert rep.filled == 0 and rep.off_points == 2 and len(out.faces) == len(wall.faces)


def test_a_sheet_rim_is_not_folded_over_the_sheet() -> None:
    sheet = trimesh.creation.box().subdivide()  # keep one side of a box: a flat open square
    m = keep_faces(Mesh.from_trimesh(sheet), torch.from_numpy(sheet.face_normals[:, 2] > 0.5))
    pts, _ = sample_surface_uniform(m, 5_000, seed=2)
    out, rep = fill_small_holes(m, pts, max_edges=64, max_gap=0.1)
    assert rep.loops == 1 and rep.filled == 0 and rep.folded == 1 and len(out.faces) == len(m.faces)


def test_loops_through_a_shared_vertex_are_left_alone() -> None:
    # two triangles touching at one vertex: the boundary walks through it twice
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])
    m = Mesh(v, torch.tensor([[0, 1, 2], [0, 3, 4]]))
    loops, not_simple = boundary_loops(m.faces.numpy())
    assert loops == [] and not_simple == 1
    out, rep = fill_small_holes(m, v, max_edges=10, max_gap=1.0)
    assert (rep.loops, rep.not_simple, rep.filled) == (1, 1, 0) and len(out.faces) == 2


def test_a_closed_or_empty_mesh_is_returned_unchanged() -> None:
    full = _sphere()
    out, rep = fill_small_holes(full, full.vertices, max_edges=8, max_gap=0.1)
    assert rep.loops == 0 and torch.equal(out.faces, full.faces)
    empty = Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
    assert fill_small_holes(empty, full.vertices, max_edges=8, max_gap=0.1)[1].loops == 0


def test_bad_points_are_refused() -> None:
    from equivision.errors import DegenerateGeometryError, ShapeError

    full = _sphere()
    bad = full.vertices.clone()
    bad[0, 0] = math.nan
    for pts, err in ((bad, InvalidInputError), (full.vertices[:, :2], ShapeError),
                     (full.vertices[:0], DegenerateGeometryError), (full.vertices[None], InvalidInputError),
                     (full.vertices.long(), InvalidInputError)):
        with pytest.raises(err):
            fill_small_holes(full, pts, max_edges=8, max_gap=0.1)


@pytest.mark.parametrize("kw", [{"max_edges": 2}, {"max_edges": True}, {"max_edges": 8.0},
                                {"max_gap": 0.0}, {"max_gap": float("nan")}, {"min_cosine": 1.5}])
def test_bad_arguments_are_refused(kw: dict) -> None:
    full = _sphere()
    args = {"max_edges": 8, "max_gap": 0.1, **kw}
    with pytest.raises(InvalidInputError):
        fill_small_holes(full, full.vertices, **args)


def test_the_pipeline_fills_last_in_the_clouds_units(monkeypatch) -> None:
    import equivision.pipelines.reconstruct as pipeline
    from equivision.recon import holes as holes_mod

    seen: list[tuple[int, float, int]] = []

    def spy(mesh, points, *, max_edges, max_gap, **kw):
        seen.append((max_edges, max_gap, len(points)))
        return holes_mod.fill_small_holes(mesh, points, max_edges=max_edges, max_gap=max_gap, **kw)

    monkeypatch.setattr(pipeline, "fill_small_holes", spy)
    g = torch.Generator().manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(2000, 3, generator=g, dtype=torch.float64), dim=1)
    plain = pipeline.reconstruct_with_field(unit, sphere_field, resolution=24)
    assert seen == [] and plain.holes is None
    for scale in (1.0, 10.0):
        rec = pipeline.reconstruct_with_field(unit * scale, sphere_field, resolution=24, fill_holes=16)
        max_edges, gap, n = seen[-1]
        # 0.5 voxel of the grid, in the cloud's units (the unit box is the cloud's box scaled to 1)
        assert max_edges == 16 and n == 2000
        assert gap == pytest.approx(0.5 * rec.stats.voxel * 2 * scale, rel=0.02)
        assert rec.holes is not None and rec.holes.loops == 0  # an exact sphere has no hole
        assert torch.equal(rec.mesh.faces, plain.mesh.faces)


@pytest.mark.parametrize("kw", [{"fill_holes": 2}, {"fill_holes": -1}, {"fill_holes": True},
                                {"fill_holes": 8.0}, {"fill_gap": 0.0}, {"fill_gap": math.inf}])
def test_the_pipeline_refuses_bad_fill_settings(kw: dict) -> None:
    from equivision.pipelines.reconstruct import reconstruct_with_field

    p = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=1)
    with pytest.raises(InvalidInputError, match="fill_"):
        reconstruct_with_field(p, sphere_field, resolution=8, **kw)


def test_the_fill_commutes_with_rigid_motions() -> None:
    from equivision.groups import SE3
    from equivision.testing import assert_equivariant

    # jittered: a regular hole has several least-area triangulations, and which one wins a tie
    # depends on rounding (and on the loop's first vertex, which follows the pose)
    full = _sphere()
    g = torch.Generator().manual_seed(3)
    full = Mesh(full.vertices.double() * (1 + 0.05 * torch.rand(len(full.vertices), 1, generator=g,
                                                                  dtype=torch.float64)), full.faces)
    holed = _without_rings(full, [0, 40, 100])
    pts, _ = sample_surface_uniform(full, 20_000, seed=0)

    def fn(x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out, rep = fill_small_holes(Mesh(x[0], holed.faces), x[1], max_edges=8, max_gap=0.02)
        assert rep.filled == 3  # the same holes close in every pose
        added = out.faces[len(holed.faces):]
        # the added faces as sets of vertices (their order may follow the pose): a pose-free key
        return torch.sort(torch.sort(added, dim=1).values, dim=0).values.double()

    def act_in(g: torch.Tensor, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        r, t = SE3.to_rt(g)
        return x[0] @ r.T + t, x[1] @ r.T + t

    # invariant: the same faces over the same vertices, exactly
    assert_equivariant(fn, (holed.vertices, pts), act_in, None, SE3().random(3, seed=4, dtype=torch.float64),
                       tol=1e-12)  # indices: any difference is at least 1 in some entry
