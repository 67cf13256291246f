"""Convex-hull (and sine) channels of the spherical ray casting: against the mesh's own
channels on convex meshes, against a half-space oracle on concave ones, under rotations,
on flat meshes and with bad channel names."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from equivision.data.procedural import make_shape
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.groups import SO3
from equivision.io import Mesh
from equivision.render import (
    convex_hull,
    first_hits_torch,
    grid_directions,
    raycast_sphere,
    rays_toward_center,
    surface_centroid,
)
from equivision.testing import assert_equivariant

HULL = ("hull_distance", "hull_cosine", "hull_sine")
MESH = ("distance", "cosine", "sine")
ALL = MESH + HULL


def _moved(mesh: Mesh, seed: int = 0) -> Mesh:
    # tilted and off-centre, so no grid symmetry hides a mistake
    r = SO3().random(1, seed=seed, dtype=torch.float64)[0]
    shift = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    return Mesh(mesh.vertices.double() @ r.T + shift, mesh.faces)


def _trimesh(tm: trimesh.Trimesh) -> Mesh:
    return _moved(Mesh(torch.tensor(tm.vertices), torch.tensor(tm.faces)))


def _box() -> Mesh:
    return _trimesh(trimesh.creation.box(extents=(1.0, 0.6, 0.3)))


def _l_shape() -> Mesh:
    """An L-shaped prism (closed, concave): a 2 × 2 square less its (1, 1) quadrant, 0.5 thick."""
    ring = torch.tensor([[0.0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], dtype=torch.float64)
    n = len(ring)
    v = torch.cat([torch.cat([ring, torch.zeros(n, 1, dtype=torch.float64)], 1),
                   torch.cat([ring, torch.full((n, 1), 0.5, dtype=torch.float64)], 1)])
    caps = [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]]  # fans of the L from vertex 0 (it sees all)
    faces = [f for a, b, c in caps for f in ([a, c, b], [a + n, b + n, c + n])]
    for i in range(n):
        j = (i + 1) % n
        faces += [[i, j, j + n], [i, j + n, i + n]]
    return _moved(Mesh(v, torch.tensor(faces)))


def _flat_l() -> Mesh:
    """A flat L with thin arms, whose centroid (where every ray aims) lies off the L itself."""
    ring = torch.tensor([[0.0, 0], [3, 0], [3, 0.5], [0.5, 0.5], [0.5, 3], [0, 3]], dtype=torch.float64)
    v = torch.cat([ring, torch.zeros(6, 1, dtype=torch.float64)], 1)
    return _moved(Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]])))


def _cast(mesh: Mesh, b: int, channels=ALL, **kw) -> torch.Tensor:
    return raycast_sphere(mesh, b, channels=channels, hits=first_hits_torch, dtype=torch.float64, **kw)


def _halfspace_oracle(mesh: Mesh, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance (over r) and |cos| where the rays of ``raycast_sphere`` enter the hull, from
    qhull's facet planes ``n·x + c ≤ 0`` (no triangles, no ray–triangle test): a ray enters a
    convex body at the largest entry over the planes it crosses inward, if that comes before
    the smallest exit."""
    from scipy.spatial import ConvexHull

    m64 = Mesh(mesh.vertices.double(), mesh.faces)
    center = surface_centroid(m64)
    radius = float((m64.vertices - center).norm(dim=-1).max()) * 1.01
    o, d = rays_toward_center(center, radius, grid_directions(b))
    eq = torch.as_tensor(ConvexHull(m64.vertices.numpy()).equations)
    n, c = eq[:, :3], eq[:, 3]
    nd = d @ n.T  # (N, F)
    t = -(o @ n.T + c) / nd
    t_in = torch.where(nd < 0, t, torch.full_like(t, -math.inf)).max(1)
    t_out = torch.where(nd > 0, t, torch.full_like(t, math.inf)).min(1).values
    hit = (t_in.values < t_out) & (t_in.values <= 2 * radius)
    dist = torch.where(hit, t_in.values / radius, torch.full_like(t_out, 2.0))
    cos = torch.where(hit, nd.gather(1, t_in.indices[:, None])[:, 0].abs(), torch.zeros_like(t_out))
    two_b = 2 * b
    return dist.reshape(two_b, two_b), cos.reshape(two_b, two_b)


@pytest.mark.parametrize("shape", ["box", "icosphere", "cylinder"])
def test_hull_channels_of_a_convex_mesh_are_its_own(shape):
    # exactly convex polyhedra (a tessellated ellipsoid is not: its quads bend inward)
    mesh = {"box": _box, "icosphere": lambda: _trimesh(trimesh.creation.icosphere(2, radius=0.7)),
            "cylinder": lambda: _trimesh(trimesh.creation.cylinder(0.4, 1.2, sections=16))}[shape]()
    sig = _cast(mesh, 10)
    # the hull is the surface, retriangulated where faces are coplanar (box sides, cylinder caps)
    assert (sig[0] < 2).float().mean() > 0.2
    assert torch.allclose(sig[3:], sig[:3], atol=1e-9, rtol=0)


@pytest.mark.parametrize("shape", ["torus", "l_shape"])
def test_hull_is_outside_a_concave_mesh_and_matches_its_planes(shape):
    mesh = _l_shape() if shape == "l_shape" else _moved(make_shape("torus", 0).mesh(32))
    b = 12
    sig = _cast(mesh, b)
    dist, hull = sig[0], sig[3]
    assert bool((hull <= dist + 1e-12).all())
    assert int((hull < dist - 0.05).sum()) > 10  # rays into the hole or the L's missing quadrant
    if shape == "torus":
        assert bool(((dist == 2) & (hull < 2)).any())  # through the hole, onto the hull's caps
    o_dist, o_cos = _halfspace_oracle(mesh, b)
    # grazing rays along an edge of the hull may land on either side of it: all but a few agree
    close = ((hull - o_dist).abs() < 1e-9) & ((sig[4] - o_cos).abs() < 1e-9)
    assert float(close.float().mean()) > 0.99


def test_hull_channels_turn_with_the_mesh():
    """Casting the rotated mesh (its hull built from the rotated vertices) equals the batched
    cast, which rotates the rays about the hull of the unrotated mesh, built once."""
    mesh = _l_shape()
    rots = SO3().random(3, seed=4, dtype=torch.float64)
    batched = _cast(mesh, 8, rotations=rots)
    center = surface_centroid(mesh)
    hull_vertices = convex_hull(mesh).vertices
    for i, r in enumerate(rots):
        moved = Mesh((mesh.vertices - center) @ r.T + center, mesh.faces)
        single = _cast(moved, 8)
        assert (single[3] < single[0] - 0.05).any()
        close = (single - batched[i]).abs() < 1e-9
        assert float(close.float().mean()) > 0.995  # all but rays grazing an edge
        # the hull's corners are the rotated corners
        rotated = (hull_vertices - center) @ r.T + center
        got = convex_hull(moved).vertices
        assert torch.cdist(got, rotated).min(1).values.max() < 1e-12
        assert torch.cdist(rotated, got).min(1).values.max() < 1e-12


def test_hull_channels_shift_exactly_under_pole_turns():
    b = 8
    mesh = _l_shape()
    center = surface_centroid(mesh)
    step = 2 * math.pi / (2 * b)

    def act_mesh(k, m):
        rz = SO3.from_euler_zyz(torch.tensor(float(k) * step), torch.tensor(0.0), torch.tensor(0.0)).double()
        return Mesh((m.vertices - center) @ rz.T + center, m.faces)

    err = assert_equivariant(lambda m: _cast(m, b, channels=HULL), mesh, act_mesh,
                             lambda k, s: torch.roll(s, int(k), dims=-1), [1, 5, 11], tol=1e-6)
    assert err < 1e-6


def test_sine_is_the_other_leg_and_zero_on_misses():
    torus = make_shape("torus", 0).mesh(32)
    sig = _cast(torus, 10)
    for d, c, s in (sig[0:3], sig[3:6]):
        hit = d < 2
        assert hit.any()
        assert torch.allclose(c[hit] ** 2 + s[hit] ** 2, torch.ones_like(c[hit]), atol=1e-12)
        assert bool((s[~hit] == 0).all() and (c[~hit] == 0).all())
    assert (sig[0] == 2).any()  # the mesh's misses, through the hole
    # every ray aims at the centroid, which the hull contains: the hull is never missed
    assert bool((sig[3] < 2).all())
    # the default channels are unchanged by the new ones being available
    assert torch.equal(_cast(torus, 10, channels=("distance", "cosine")), sig[:2])


def test_flat_mesh_gets_its_planar_hull():
    """qhull finds no 3D hull of a flat L; its hull is the flat pentagon around it, fanned into
    three triangles. The rays that miss the L through its centroid hit the pentagon there."""
    flat_l = _flat_l()
    hull = convex_hull(flat_l)
    assert len(hull.faces) == 3 and set(hull.faces.unique().tolist()) == {0, 1, 2, 4, 5}
    sig = _cast(flat_l, 10, channels=("distance", "hull_distance", "hull_cosine"))
    assert bool((sig[1] <= sig[0] + 1e-12).all()) and float((sig[1] < sig[0] - 0.5).float().mean()) > 0.9
    # the pentagon as a mesh of its own, cast from the flat L's sphere (same centre, radius)
    sq = Mesh(flat_l.vertices[[0, 1, 2, 4, 5]],
              torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4]]))
    center = surface_centroid(flat_l)
    radius = float((flat_l.vertices - center).norm(dim=-1).max()) * 1.01
    o, d = rays_toward_center(center, radius, grid_directions(10))
    t, _ = first_hits_torch(sq, o, d)
    ref = torch.where(torch.isfinite(t), t / radius, torch.full_like(t, 2.0)).reshape(20, 20)
    assert float(((sig[1] - ref).abs() < 1e-9).float().mean()) > 0.99


def test_collinear_vertices_have_no_hull():
    line = Mesh(torch.tensor([[0.0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]),
                torch.tensor([[0, 1, 2], [1, 2, 3]]))
    with pytest.raises(DegenerateGeometryError, match="collinear"):
        convex_hull(line)
    with pytest.raises(DegenerateGeometryError):  # no area: refused before any hull is built
        raycast_sphere(line, 4, channels=("hull_distance",))


@pytest.mark.parametrize("bad", [("hull_depth",), (), ("distance", "normal")])
def test_unknown_channels_are_refused(bad):
    with pytest.raises(InvalidInputError, match="channels"):
        raycast_sphere(_box(), 4, channels=bad)
