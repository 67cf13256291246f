"""Field averaging over several patches per query (``predict_displacement(field_views=V)``):
the anchors, the plane through the predicted surface points, equivariance and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from equivision.errors import InvalidInputError
from equivision.groups import SE3
from equivision.models.peif import PEIFConfig, PEIFNet
from equivision.recon.frames import canonical_patches
from equivision.recon.predict import plane_displacement, predict_displacement, view_offsets
from equivision.testing import assert_equivariant


def small_net(pose_normalization: bool = True) -> PEIFNet:
    torch.manual_seed(0)
    return PEIFNet(PEIFConfig(k=8, feature_dim=8, top_k=2, memory_heads=1, memory_items=4,
                              mlp_a=[16], mlp_d=[16], pose_normalization=pose_normalization)).eval()


def bumpy_sphere(n: int = 1500, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    return d * (0.5 + 0.05 * torch.sin(4 * d[:, :1]) * torch.cos(3 * d[:, 1:2]))


def plane_cloud(n: int = 400, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.5
    return torch.cat([xy, torch.zeros(n, 1, dtype=torch.float64)], 1)


def test_view_offsets_lie_in_the_tangent_plane_at_the_spread_and_cancel():
    cloud = plane_cloud()
    q = torch.tensor([[0.01, 0.02, 0.03], [-0.1, 0.05, -0.02]], dtype=torch.float64)
    fr = canonical_patches(cloud, q, 16).frames
    off = view_offsets(fr, 5, 0.5)
    assert off.shape == (5, 2, 3)
    assert torch.equal(off[0], torch.zeros_like(off[0]))
    assert torch.allclose(off.sum(0), torch.zeros(2, 3, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(off[..., 2], torch.zeros(5, 2, dtype=torch.float64), atol=1e-12)  # z = normal
    h = 0.5 * fr.eigenvalues[:, 0].sqrt()
    assert torch.allclose(off[1:].norm(dim=-1), h.expand(4, 2), rtol=1e-12)
    # the four anchors are two perpendicular pairs
    assert float((off[1] * off[3]).sum(-1).abs().max()) < 1e-12


def test_plane_of_exact_views_gives_the_exact_displacement():
    """Predicted surface points on the true plane, wherever on it (tangential errors), give
    the exact direction; the query's own distance is kept."""
    g = torch.Generator().manual_seed(2)
    n = torch.nn.functional.normalize(torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64), dim=0)
    q = torch.randn(50, 3, generator=g, dtype=torch.float64) * 0.1
    foot = q - (q @ n)[:, None] * n
    t1 = torch.nn.functional.normalize(torch.linalg.cross(n, torch.tensor([1.0, 0, 0], dtype=n.dtype)), dim=0)
    t2 = torch.linalg.cross(n, t1)
    off = torch.stack([torch.zeros_like(q), 0.02 * t1.expand_as(q), -0.02 * t1.expand_as(q),
                       0.02 * t2.expand_as(q), -0.02 * t2.expand_as(q)])
    slide = torch.randn(5, 50, 2, generator=g, dtype=torch.float64) * 0.005  # errors along the plane
    surface = foot[None] + off + slide[..., :1] * t1 + slide[..., 1:] * t2
    disp = surface - (q[None] + off)
    exact = foot - q
    # the query's own prediction points 20° off the normal, with the right distance
    tilt = math.radians(20)
    d0 = exact.norm(dim=1, keepdim=True) * torch.nn.functional.normalize(
        math.cos(tilt) * torch.nn.functional.normalize(exact, dim=1) + math.sin(tilt) * t1, dim=1)
    disp[0] = d0
    surface[0] = q + d0  # off the plane: the fit must tolerate one point ~sin(20°)·dist off it
    got = plane_displacement(off, disp)
    err_before = torch.rad2deg(torch.acos(torch.nn.functional.cosine_similarity(d0, exact).clamp(-1, 1)))
    err_after = torch.rad2deg(torch.acos(torch.nn.functional.cosine_similarity(got, exact).clamp(-1, 1)))
    assert float(err_before.min()) > 19.0
    assert float(err_after.median()) < 5.0
    assert torch.allclose(got.norm(dim=1), exact.norm(dim=1), rtol=1e-12)
    # all five points on the plane (the query's prediction exact too): exact to rounding
    disp[0] = exact
    assert torch.allclose(plane_displacement(off, disp), exact, atol=1e-12)


def test_plane_far_from_the_query_prediction_is_not_used():
    q_pred = torch.tensor([[0.0, 0.0, -0.1]])
    off = torch.tensor([[[0.0, 0, 0]], [[0.0, 0.05, 0]], [[0.0, -0.05, 0]], [[0, 0, 0.05]], [[0, 0, -0.05]]])
    # the surface points lie in the plane x = 0 (normal x), 90° from the prediction (along z)
    disp = torch.cat([q_pred[None], torch.zeros(4, 1, 3)])
    got = plane_displacement(off, disp)
    assert torch.equal(got, q_pred)


def test_field_views_prediction_is_equivariant():
    net = small_net()
    cloud = bumpy_sphere()
    g = torch.Generator().manual_seed(4)
    queries = cloud[:200] * (1 + 0.05 * torch.randn(200, 1, generator=g))

    def fn(x):
        return predict_displacement(net, x[0], x[1], field_views=5, compute_dtype=torch.float32)

    def act_in(gr, x):
        r, t = SE3.to_rt(gr)
        return (x[0] @ r.T + t, x[1] @ r.T + t)

    def act_out(gr, y):
        r, _ = SE3.to_rt(gr)
        return y @ r.T

    base = fn((cloud, queries))
    assert not torch.allclose(base, predict_displacement(net, cloud, queries, compute_dtype=torch.float32))
    # measured worst 1.3e-6 relative in float32, the same as one view (the plane fit in float64)
    assert_equivariant(fn, (cloud, queries), act_in, act_out,
                       SE3().random(3, seed=6, dtype=torch.float32), tol=1e-5)


def test_one_view_is_the_default_field():
    net = small_net()
    cloud = bumpy_sphere(600)
    q = cloud[:50] * 1.03
    a = predict_displacement(net, cloud, q, compute_dtype=torch.float32)
    b = predict_displacement(net, cloud, q, compute_dtype=torch.float32, field_views=1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("views", [0, 2, 4, -1, True, 3.0])
def test_bad_field_views_are_refused(views):
    net = small_net()
    cloud = bumpy_sphere(300)
    with pytest.raises(InvalidInputError, match="field_views"):
        predict_displacement(net, cloud, cloud[:4], field_views=views)


def test_views_need_pose_normalisation_and_a_positive_spread():
    cloud = bumpy_sphere(300)
    with pytest.raises(InvalidInputError, match="pose normalisation"):
        predict_displacement(small_net(False), cloud, cloud[:4], field_views=3)
    with pytest.raises(InvalidInputError, match="view_spread"):
        predict_displacement(small_net(), cloud, cloud[:4], field_views=3, view_spread=float("nan"))
