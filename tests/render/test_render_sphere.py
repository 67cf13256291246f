"""Ray casting meshes onto the sphere: oracles, equivariance, misses and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from equivision.data.procedural import make_shape
from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.groups import SO3
from equivision.io import Mesh
from equivision.render import (
    embree_available,
    first_hits_embree,
    first_hits_through_point,
    first_hits_torch,
    raycast_sphere,
    surface_centroid,
)
from equivision.sphere.grid import Grid
from equivision.testing import assert_equivariant

needs_embree = pytest.mark.skipif(not embree_available(), reason="embreex is not installed")


@pytest.fixture(scope="module")
def capsule() -> Mesh:
    # off-centre and tilted so that no grid symmetry hides a mistake
    m = make_shape("capsule", 3).mesh(24)
    r = SO3.from_euler_zyz(torch.tensor(0.3), torch.tensor(0.7), torch.tensor(-0.2))
    return Mesh(m.vertices @ r.T + torch.tensor([0.3, -0.1, 0.2]), m.faces)


def _sphere_mesh(radius: float) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    return Mesh(torch.tensor(tm.vertices, dtype=torch.float32), torch.tensor(tm.faces))


def test_sphere_mesh_gives_the_analytic_signal():
    """A sphere of radius ρ seen from the enclosing sphere of radius r = 1.01 ρ: every ray
    travels r − ρ and hits the surface head-on (cosine 1)."""
    m = _sphere_mesh(0.5)
    sig = raycast_sphere(m, 8, dtype=torch.float64)
    r = float((m.vertices.double() - surface_centroid(m).double()).norm(dim=-1).max()) * 1.01
    # the icosphere's faces lie inside the circumscribed sphere by at most ~0.2% of ρ
    assert torch.allclose(sig[0], torch.full_like(sig[0], (r - 0.5) / r), atol=3e-3)
    assert float(sig[1].min()) > 0.999


def test_torch_hits_match_an_independent_oracle(capsule):
    """Our matmul Möller–Trumbore against trimesh's own ray-triangle intersector."""
    from trimesh.ray.ray_triangle import RayMeshIntersector

    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=1)
    m64 = Mesh(capsule.vertices.double(), capsule.faces)
    o = surface_centroid(m64) - 2.0 * d + 0.1 * torch.randn(200, 3, generator=g, dtype=torch.float64)
    t, face = first_hits_torch(m64, o, d)
    loc, ray, _tri = RayMeshIntersector(m64.to_trimesh()).intersects_location(
        o.numpy(), d.numpy(), multiple_hits=False
    )
    t_ref = torch.full((200,), math.inf, dtype=torch.float64)
    t_ref[torch.as_tensor(ray)] = (torch.as_tensor(loc) - o[torch.as_tensor(ray)]).norm(dim=-1)
    assert torch.equal(torch.isfinite(t), torch.isfinite(t_ref))
    fin = torch.isfinite(t)
    assert fin.sum() > 100 and torch.allclose(t[fin], t_ref[fin], atol=1e-9)
    assert bool((face[~fin] == -1).all())


def _flat_square() -> Mesh:
    """Two triangles through their own centroid: every face is "near" the centre."""
    v = torch.tensor([[-1.0, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]])
    return Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3]]))


@pytest.mark.parametrize("shape", ["capsule", "torus", "holed_box", "square"])
def test_bucketed_hits_equal_brute_force(shape, capsule):
    """The bucketed fallback against the brute-force oracle over every ray–face pair: the same
    distances and faces, for closed meshes, a torus (rays through its hole and past the centre),
    a box with a hole and a flat square through the centre (the every-ray route)."""
    mesh = {"capsule": capsule, "square": _flat_square()}.get(shape) or make_shape(shape, 1).mesh(24)
    rots = SO3().random(3, seed=1, dtype=torch.float64)
    kw = {"rotations": rots, "dtype": torch.float64}
    a = raycast_sphere(mesh, 12, hits=first_hits_torch, **kw)
    b = raycast_sphere(mesh, 12, hits=first_hits_through_point, **kw)
    assert (a[:, 0] < 2).any()
    if shape in ("torus", "holed_box"):
        assert (a[:, 0] == 2).any()  # rays through the hole
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    m64 = Mesh(mesh.vertices.double(), mesh.faces)
    c = surface_centroid(m64)
    d = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=1)
    t1, f1 = first_hits_torch(m64, c - 3 * d, d)
    t2, f2 = first_hits_through_point(m64, c - 3 * d, d)
    assert torch.equal(torch.isfinite(t1), torch.isfinite(t2)) and torch.equal(f1, f2)
    fin = torch.isfinite(t1)
    assert torch.allclose(t1[fin], t2[fin], atol=1e-12, rtol=0)


def test_bucketed_hits_need_rays_through_one_point(capsule):
    d = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=1)
    o = torch.randn(50, 3, dtype=torch.float64)  # lines that do not meet
    with pytest.raises(InvalidInputError, match="one point"):
        first_hits_through_point(Mesh(capsule.vertices.double(), capsule.faces), o, d)


@needs_embree
def test_embree_and_torch_agree(capsule):
    a = raycast_sphere(capsule, 8, hits=first_hits_embree, dtype=torch.float64)
    b = raycast_sphere(capsule, 8, hits=first_hits_torch, dtype=torch.float64)
    assert torch.allclose(a, b, atol=1e-6)


def test_rotating_the_mesh_about_the_pole_shifts_the_signal_exactly(capsule):
    """Rotations about z by multiples of the azimuth step map the DH grid onto itself:
    the signal of the rotated mesh is the signal rolled along φ (harness, tol 1e-5)."""
    b = 12
    step = 2 * math.pi / (2 * b)
    center = surface_centroid(capsule)

    def act_mesh(k, m):
        rz = SO3.from_euler_zyz(torch.tensor(float(k) * step), torch.tensor(0.0), torch.tensor(0.0))
        return Mesh((m.vertices - center) @ rz.T.float() + center, m.faces)

    def act_signal(k, s):
        return torch.roll(s, int(k), dims=-1)

    err = assert_equivariant(
        lambda m: raycast_sphere(m, b, dtype=torch.float64),
        capsule,
        act_mesh,
        act_signal,
        [1, 3, 7, 12, 17],
        tol=1e-5,
    )
    assert err < 1e-5


def test_batched_rotations_equal_rotated_meshes(capsule):
    rots = SO3().random(3, seed=1)
    batched = raycast_sphere(capsule, 8, rotations=rots, dtype=torch.float64)
    assert batched.shape == (3, 2, 16, 16)
    center = surface_centroid(capsule)
    for i, r in enumerate(rots):
        moved = Mesh((capsule.vertices - center) @ r.T + center, capsule.faces)
        single = raycast_sphere(moved, 8, dtype=torch.float64)
        # float32 vertices: agreement to float32 precision, except rays grazing an edge
        close = (single - batched[i]).abs() < 1e-4
        assert float(close.float().mean()) > 0.995


def test_rays_through_a_hole_are_documented_misses():
    torus = make_shape("torus", 0).mesh(32)  # lies in the xz plane, hole around the y axis
    sig = raycast_sphere(torus, 16, channels=("distance", "cosine"))
    grid = Grid(16).points()
    # rays coming from near the ±y poles pass through the hole: distance 2, cosine 0
    polar = grid[..., 1].abs() > 0.995
    assert polar.any()
    assert torch.all(sig[0][polar] == 2.0) and torch.all(sig[1][polar] == 0.0)
    # rays from the equator of the torus' plane hit it
    assert float(sig[0][grid[..., 1].abs() < 0.05].max()) < 2.0


def test_channel_selection_and_bad_input(capsule):
    assert raycast_sphere(capsule, 4, channels=("cosine",)).shape == (1, 8, 8)
    with pytest.raises(InvalidInputError):
        raycast_sphere(capsule, 4, channels=("depth",))
    with pytest.raises(InvalidInputError):
        raycast_sphere(capsule, 4, rotations=torch.eye(3)[None] * 2)
    with pytest.raises(InvalidInputError):
        raycast_sphere(capsule, 4, rotations=torch.eye(3))
    with pytest.raises(DegenerateGeometryError):
        raycast_sphere(Mesh(torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.long)), 4)
    with pytest.raises(DegenerateGeometryError):
        raycast_sphere(Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 2]])), 4)
    with pytest.raises((InvalidInputError, ShapeError)):
        raycast_sphere(capsule, 0)


def test_sphere_cli_writes_picture_and_signal(tmp_path, capsys):
    import numpy as np

    from equivision.cli import main
    from equivision.io import save_mesh

    mesh_path = save_mesh(make_shape("cone", 0).mesh(24), tmp_path / "cone.ply")
    out, sig = tmp_path / "cone.png", tmp_path / "cone.npy"
    assert main(["sphere", str(mesh_path), "-o", str(out), "-b", "8", "--signal", str(sig)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and np.load(sig).shape == (2, 16, 16)
    assert "rays hit" in capsys.readouterr().out
    assert main(["sphere", str(mesh_path), "-o", str(out)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(["sphere", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "m.png")]) == 2
