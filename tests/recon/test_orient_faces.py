"""Consistent, outward face windings (``orient_faces``): extraction leaves each tetrahedron's
triangles in whatever winding its table gives (about half of the shared edges of a PEIF mesh
were crossed the same way by both faces before this), so shading and inside tests need them
made consistent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from _recon_fields import sphere_field

from equivision.geometry import sample_surface_uniform
from equivision.groups import SO3
from equivision.io import Mesh
from equivision.pipelines.reconstruct import reconstruct_with_field
from equivision.recon import closest_points_on_mesh
from equivision.recon.extract import extract_mesh_udf, orient_faces
from equivision.testing import assert_equivariant


def winding_conflicts(mesh: Mesh) -> tuple[int, int]:
    """(edges shared by two faces that cross it the same way, edges shared by two faces)."""
    f = mesh.faces.numpy()
    _, vid = np.unique(mesh.vertices.double().numpy(), axis=0, return_inverse=True)
    f = vid.reshape(-1)[f]
    d = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    _, idx, cnt = np.unique(np.sort(d, axis=1), axis=0, return_inverse=True, return_counts=True)
    idx = idx.reshape(-1)
    up = np.bincount(idx, weights=(d[:, 0] < d[:, 1]).astype(float), minlength=len(cnt))
    two = cnt == 2
    return int((two & (up != 1)).sum()), int(two.sum())


def outward_fraction(mesh: Mesh, centre: torch.Tensor) -> float:
    """Fraction of faces whose normal points away from ``centre`` (star-shaped surfaces)."""
    tri = mesh.vertices.double()[mesh.faces]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return float(((n * (tri.mean(1) - centre.double())).sum(-1) > 0).double().mean())


def scrambled(tm: trimesh.Trimesh, seed: int) -> Mesh:
    f = np.array(tm.faces)
    flip = np.random.default_rng(seed).random(len(f)) < 0.5
    f[flip] = f[flip, ::-1]
    return Mesh(torch.as_tensor(tm.vertices, dtype=torch.float64), torch.as_tensor(f, dtype=torch.long))


def same_triangles(a: Mesh, b: Mesh) -> bool:
    return np.array_equal(np.sort(np.sort(a.faces.numpy(), 1), 0), np.sort(np.sort(b.faces.numpy(), 1), 0))


def test_scrambled_sphere_comes_out_consistent_and_outward():
    tm = trimesh.creation.icosphere(3, radius=0.5)
    mesh = scrambled(tm, 0)
    assert winding_conflicts(mesh)[0] > 100
    out = orient_faces(mesh)
    assert winding_conflicts(out) == (0, len(tm.edges_unique))
    assert outward_fraction(out, torch.zeros(3)) == 1.0
    assert same_triangles(out, mesh) and torch.equal(out.vertices, mesh.vertices)


def test_inward_closed_mesh_is_turned_outward_and_pieces_are_oriented_apart():
    sphere = trimesh.creation.icosphere(2, radius=0.3)
    sphere.invert()  # consistent, but inward
    torus = trimesh.creation.torus(0.3, 0.1, major_sections=24, minor_sections=12)
    torus.apply_translation([1.0, 0.0, 0.0])
    tm = trimesh.util.concatenate([sphere, torus])
    mesh = scrambled(tm, 1)
    out = orient_faces(mesh)
    assert winding_conflicts(out)[0] == 0
    o = out.to_trimesh()
    for piece in o.split(only_watertight=False):
        assert piece.is_winding_consistent and piece.volume > 0
    assert outward_fraction(Mesh(out.vertices, out.faces[: len(sphere.faces)]), torch.zeros(3)) == 1.0


def test_open_sheet_becomes_consistent():
    g = trimesh.creation.box((1.0, 1.0, 1.0))
    sheet = trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(g.vertices, g.faces, 0.2))
    sheet.update_faces(sheet.triangles_center[:, 2] > 0.49)  # the top face, subdivided
    sheet.remove_unreferenced_vertices()
    out = orient_faces(scrambled(sheet, 2))
    conflicts, shared = winding_conflicts(out)
    assert conflicts == 0 and shared > 10


@pytest.mark.parametrize("reflect", [False, True])
def test_windings_follow_rotations_and_flip_with_reflections(reflect):
    mesh = scrambled(trimesh.creation.icosphere(2, radius=0.5), 3)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))  # a rotation
    if reflect:
        q = q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    moved = orient_faces(Mesh(mesh.vertices @ q.T + 0.3, mesh.faces))
    assert winding_conflicts(moved)[0] == 0
    assert outward_fraction(moved, torch.full((3,), 0.3)) == 1.0  # outward either way
    same = orient_faces(mesh)
    assert torch.equal(moved.faces, same.faces) != reflect


def test_face_normals_are_rotation_equivariant_through_the_harness():
    """Oriented face normals of a scrambled mesh rotate with its vertices (float64, exact
    combinatorics, so to rounding)."""
    mesh = scrambled(trimesh.creation.icosphere(2, radius=0.5), 5)

    def normals(v: torch.Tensor) -> torch.Tensor:
        tri = v[orient_faces(Mesh(v, mesh.faces)).faces]
        return torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])

    def rotate(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ r.T

    elements = SO3().random(4, seed=6, dtype=torch.float64)
    assert_equivariant(normals, mesh.vertices, rotate, rotate, elements, tol=1e-12)


def test_extraction_and_pipeline_give_outward_windings():
    tm = trimesh.creation.icosphere(4, radius=0.4)
    ref = Mesh(torch.as_tensor(tm.vertices, dtype=torch.float64), torch.as_tensor(tm.faces, dtype=torch.long))
    pts, _ = sample_surface_uniform(ref, 6000, seed=0)

    def field(q):
        p, _, _ = closest_points_on_mesh(ref, q.double())
        return p - q.double()

    raw, _ = extract_mesh_udf(field, pts.double(), resolution=48)
    assert winding_conflicts(raw)[0] > 0  # the tables' windings are not consistent
    out = orient_faces(raw)
    assert winding_conflicts(out)[0] == 0 and outward_fraction(out, torch.zeros(3)) == 1.0

    rec = reconstruct_with_field(pts.double() + 2.0, sphere_field, resolution=32).mesh
    assert winding_conflicts(rec)[0] == 0
    assert outward_fraction(rec, torch.full((3,), 2.0, dtype=torch.float64)) == 1.0


def test_empty_mesh_passes_through():
    empty = Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long))
    assert len(orient_faces(empty).faces) == 0
