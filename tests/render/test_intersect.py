"""intersect_first: batched rays of any shape, the hit face's normal, the choice of back end
and bad rays; rays from an eye point (what a pinhole camera casts) through every back end."""

from __future__ import annotations

import pytest
import torch
import trimesh

from equivision.errors import InvalidInputError, ShapeError
from equivision.io import Mesh
from equivision.render import (
    Hits,
    embree_available,
    first_hits_embree,
    first_hits_through_point,
    first_hits_torch,
    grid_directions,
    hits_function,
    intersect_first,
    rays_toward_center,
    share_a_point,
)

needs_embree = pytest.mark.skipif(not embree_available(), reason="embreex is not installed")


@pytest.fixture(scope="module")
def box() -> Mesh:
    """An axis-aligned box [-0.5, 0.5] x [-0.3, 0.3] x [-0.2, 0.2], outward faces."""
    tm = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    return Mesh(torch.tensor(tm.vertices, dtype=torch.float64), torch.tensor(tm.faces))


def _eye_rays(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays ``(h, w, 3)`` from an eye at z = 3 through a small image plane toward -z."""
    ys, xs = torch.meshgrid(torch.linspace(-0.08, 0.08, h, dtype=torch.float64),
                            torch.linspace(-0.15, 0.15, w, dtype=torch.float64), indexing="ij")
    d = torch.stack([xs, ys, -torch.ones_like(xs)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    o = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64).expand(h, w, 3)
    return o, d


@pytest.mark.parametrize("backend", ["torch", "through_point", pytest.param("embree", marks=needs_embree)])
def test_eye_rays_hit_the_front_face_with_its_normal(box, backend):
    """Every ray of the eye's small image hits the box's +z face (z = 0.2): distance
    ``2.8 / |d_z|``, normal +z; the shape of the batch is kept."""
    o, d = _eye_rays(5, 7)
    hits = intersect_first(box, o, d, backend=backend)
    assert isinstance(hits, Hits)
    assert hits.distance.shape == (5, 7) and hits.face.shape == (5, 7) and hits.normal.shape == (5, 7, 3)
    assert bool(hits.hit.all())
    assert torch.allclose(hits.distance, 2.8 / d[..., 2].abs(), atol=1e-9, rtol=0)
    plus_z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(5, 7, 3)
    assert torch.allclose(hits.normal, plus_z, atol=1e-12)


def test_misses_have_no_face_and_a_zero_normal(box):
    o = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # toward, away
    hits = intersect_first(box, o, d, backend="torch")
    assert hits.hit.tolist() == [True, False]
    assert float(hits.distance[0]) == pytest.approx(2.8) and hits.distance[1] == float("inf")
    assert int(hits.face[1]) == -1 and torch.equal(hits.normal[1], torch.zeros(3, dtype=torch.float64))


def test_backends_agree_on_rays_through_one_point(box):
    """The bucketed back end against brute force on a sphere grid cast at the box (some rays
    miss its thin sides), faces and distances identical."""
    u = grid_directions(6)
    o, d = rays_toward_center(torch.tensor([0.1, -0.05, 0.02], dtype=torch.float64), 2.0, u)
    a = intersect_first(box, o, d, backend="torch")
    b = intersect_first(box, o, d, backend="through_point")
    assert bool(a.hit.all())
    assert torch.equal(a.face, b.face) and torch.allclose(a.distance, b.distance, atol=1e-12, rtol=0)
    assert torch.equal(a.normal, b.normal)


def test_auto_picks_a_back_end_that_fits_the_rays(box):
    o, d = _eye_rays(3, 3)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    apart = o + torch.randn(9, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert share_a_point(o, d) and not share_a_point(apart, d)
    if embree_available():
        assert hits_function("auto", o, d) is first_hits_embree
    else:
        assert hits_function("auto", o, d) is first_hits_through_point
        assert hits_function("auto", apart, d) is first_hits_torch
    assert hits_function("torch", o, d) is first_hits_torch  # what tests force without Embree
    # rays that share no point still get their hits through "auto"
    a = intersect_first(box, apart, d)
    b = intersect_first(box, apart, d, backend="torch")
    assert torch.equal(a.face, b.face) and torch.allclose(a.distance, b.distance, atol=1e-6, rtol=0)


def test_bad_rays_and_backends_are_refused(box):
    o, d = _eye_rays(2, 2)
    with pytest.raises(ShapeError):
        intersect_first(box, o, d[..., :2])
    with pytest.raises(ShapeError):
        intersect_first(box, o[0], d)
    with pytest.raises(InvalidInputError, match="unit"):
        intersect_first(box, o, 2 * d)
    bad = o.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        intersect_first(box, bad, d)
    with pytest.raises(InvalidInputError, match="backend"):
        intersect_first(box, o, d, backend="optix")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        intersect_first(box, o.long(), d)
