"""Taubin fairing: against a slow per-vertex loop, on a jittered sphere (rougher normals made
smooth, radius kept), the move cap, fixed boundary and non-manifold vertices, commuting with
rigid motions and reflections, the pipeline's defaults, bad arguments refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from _recon_fields import sphere_field

from equivision.errors import InvalidInputError, ShapeError
from equivision.io import Mesh
from equivision.recon.fairing import TAUBIN_LAMBDA, TAUBIN_MU, fixed_vertices, taubin_fairing
from equivision.recon.holes import boundary_loops


def _jittered_sphere(sub: int = 3, amount: float = 0.01, seed: int = 0) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=sub)
    v = torch.as_tensor(tm.vertices, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    v = v * (1 + amount * torch.randn(len(v), 1, generator=g, dtype=torch.float64))
    return Mesh(v, torch.as_tensor(tm.faces, dtype=torch.long))


def _cap_removed(mesh: Mesh, z: float = 0.5) -> Mesh:
    """The sphere without the faces above ``z``: an open surface with one boundary loop."""
    keep = ~(mesh.vertices[mesh.faces][:, :, 2] > z).any(1)
    return Mesh(mesh.vertices, mesh.faces[keep])


def _slow_taubin(v: np.ndarray, faces: np.ndarray, iterations: int, lam: float, mu: float) -> np.ndarray:
    """The filter written vertex by vertex, from the definition (reference)."""
    n = len(v)
    nbrs: list[set[int]] = [set() for _ in range(n)]
    uses: dict[tuple[int, int], int] = {}
    for f in faces.tolist():
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            nbrs[a].add(b)
            nbrs[b].add(a)
            key = (min(a, b), max(a, b))
            uses[key] = uses.get(key, 0) + 1
    fixed = {i for e, c in uses.items() if c != 2 for i in e}
    v = v.copy()
    for _ in range(iterations):
        for step in (lam, mu):
            new = v.copy()
            for i in range(n):
                if nbrs[i] and i not in fixed:
                    mean = sum(v[j] for j in nbrs[i]) / len(nbrs[i])
                    new[i] = v[i] + step * (mean - v[i])
            v = new
    return v


def _face_normal_angles(mesh: Mesh) -> np.ndarray:
    """Each face's angle (degrees) to the sphere's true normal at its centre."""
    v, f = mesh.vertices.double().numpy(), mesh.faces.numpy()
    tri = v[f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    c = tri.mean(1)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.abs((n * c).sum(1)), 0, 1)))


def test_matches_the_slow_per_vertex_loop_on_an_open_mesh() -> None:
    mesh = _cap_removed(_jittered_sphere(2, 0.05))
    out = taubin_fairing(mesh, 4)
    ref = _slow_taubin(mesh.vertices.numpy(), mesh.faces.numpy(), 4, TAUBIN_LAMBDA, TAUBIN_MU)
    np.testing.assert_allclose(out.vertices.numpy(), ref, rtol=0, atol=1e-12)
    assert torch.equal(out.faces, mesh.faces) and out.vertices.dtype == torch.float64


def test_jitter_is_removed_and_the_radius_kept() -> None:
    mesh = _jittered_sphere(4, 0.01)
    out = taubin_fairing(mesh, 10)
    before, after = _face_normal_angles(mesh), _face_normal_angles(out)
    assert np.median(after) < 0.4 * np.median(before)  # measured: 12.4° → 2.6°
    r0 = mesh.vertices.norm(dim=1).mean().item()
    r1 = out.vertices.norm(dim=1).mean().item()
    assert abs(r1 - r0) < 2e-3 * r0  # no shrinking: Taubin's μ step undoes λ's (measured 8e-4)
    # the jitter itself is what moved: the faired radius is nearer 1 than the jittered one
    assert (out.vertices.norm(dim=1) - 1).abs().mean() < 0.5 * (mesh.vertices.norm(dim=1) - 1).abs().mean()


def test_no_vertex_moves_farther_than_the_cap() -> None:
    mesh = _jittered_sphere(3, 0.03)
    cap = 0.004
    out = taubin_fairing(mesh, 10, max_move=cap)
    move = (out.vertices - mesh.vertices).norm(dim=1)
    assert move.max().item() <= cap * (1 + 1e-12)
    free = taubin_fairing(mesh, 10)
    free_move = (free.vertices - mesh.vertices).norm(dim=1)
    capped = free_move > cap
    assert capped.any()  # the cap acts here, along each vertex's own direction of travel
    d_out = out.vertices - mesh.vertices
    d_free = free.vertices - mesh.vertices
    cos = (d_out[capped] * d_free[capped]).sum(1) / (move[capped] * free_move[capped])
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-12)
    assert torch.equal(out.vertices[~capped], free.vertices[~capped])


def test_boundary_and_non_manifold_vertices_stay_put() -> None:
    mesh = _cap_removed(_jittered_sphere(3, 0.03))
    loops, not_simple = boundary_loops(mesh.faces.numpy())
    assert len(loops) == 1 and not_simple == 0
    rim = torch.as_tensor(sorted({int(i) for loop in loops for i in loop}))
    fixed = fixed_vertices(mesh)
    assert torch.equal(torch.nonzero(fixed).ravel(), rim)
    out = taubin_fairing(mesh, 5)
    assert torch.equal(out.vertices[rim], mesh.vertices[rim])
    used = torch.zeros(len(mesh.vertices), dtype=torch.bool)
    used[mesh.faces.ravel()] = True
    assert torch.equal(out.vertices[~used], mesh.vertices[~used])  # vertices of no face
    assert (out.vertices[used & ~fixed] != mesh.vertices[used & ~fixed]).any(1).all()
    # three triangles on one edge: its two ends are non-manifold and fixed
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -1, 0], [0.5, 0, 1]], dtype=torch.float64)
    fan = Mesh(v, torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))
    assert fixed_vertices(fan)[:2].all()


def test_commutes_with_rigid_motions_and_reflections() -> None:
    from equivision.groups import SE3
    from equivision.testing import assert_equivariant

    mesh = _cap_removed(_jittered_sphere(3, 0.03))

    def fn(v: torch.Tensor) -> torch.Tensor:
        return taubin_fairing(Mesh(v, mesh.faces), 6, max_move=0.01).vertices

    def act(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r, t = SE3.to_rt(g)
        return v @ r.T + t

    elems = SE3().random(4, seed=1, dtype=torch.float64)
    assert_equivariant(fn, mesh.vertices, act, act, elems, tol=1e-12)
    mirror = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))  # not in SE(3)
    torch.testing.assert_close(fn(mesh.vertices @ mirror), fn(mesh.vertices) @ mirror, rtol=0, atol=1e-13)


def test_zero_steps_or_zero_cap_return_the_mesh_and_bad_arguments_are_refused() -> None:
    mesh = _jittered_sphere(1)
    assert taubin_fairing(mesh, 0) is mesh
    assert taubin_fairing(mesh, 3, max_move=0.0) is mesh
    for kw in ({"iterations": -1}, {"iterations": 2.0}, {"iterations": True}):
        with pytest.raises(InvalidInputError, match="iterations"):
            taubin_fairing(mesh, **kw)
    for kw in ({"lam": 0.6, "mu": -0.5}, {"lam": 0.0}, {"mu": math.nan}):
        with pytest.raises(InvalidInputError, match="lam"):
            taubin_fairing(mesh, 2, **kw)
    for cap in (-1.0, math.inf, math.nan):
        with pytest.raises(InvalidInputError, match="max_move"):
            taubin_fairing(mesh, 2, max_move=cap)
    with pytest.raises(ShapeError):
        taubin_fairing(Mesh(mesh.vertices[:, :2], mesh.faces), 2)


def test_fairing_in_reconstruct_with_field_moves_vertices_by_at_most_the_cap() -> None:
    from equivision.pipelines.reconstruct import reconstruct_with_field
    from equivision.recon.frames import cloud_frame

    g = torch.Generator().manual_seed(0)
    p = torch.nn.functional.normalize(torch.randn(3000, 3, generator=g, dtype=torch.float64), dim=1) * 2.0
    plain = reconstruct_with_field(p, sphere_field, resolution=32)
    faired = reconstruct_with_field(p, sphere_field, resolution=32, fairing=5, fairing_max_move=0.1)
    assert torch.equal(plain.mesh.faces, faired.mesh.faces)
    # the unit box's voxel in the cloud's units: the box is the canonical-frame box scaled to side 1
    frame = cloud_frame(p)
    canon = (p - frame.centroids) @ frame.rotations
    voxel = plain.stats.voxel * float((canon.max(0).values - canon.min(0).values).max())
    move = (faired.mesh.vertices - plain.mesh.vertices).double().norm(dim=1)
    assert 0 < move.max().item() <= 0.1 * voxel * (1 + 1e-9)
    assert "fairing" in faired.seconds


@pytest.mark.parametrize("kw", [{"fairing": -1}, {"fairing": 2.5}, {"fairing": True},
                                {"fairing_max_move": 0.0}, {"fairing_max_move": math.inf}])
def test_reconstruct_with_field_refuses_bad_fairing(kw) -> None:
    from equivision.pipelines.reconstruct import reconstruct_with_field

    p = torch.nn.functional.normalize(torch.randn(200, 3, dtype=torch.float64), dim=1)
    with pytest.raises(InvalidInputError, match="fairing"):
        reconstruct_with_field(p, sphere_field, resolution=8, **kw)
