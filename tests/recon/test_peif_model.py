"""PEIF's displacement predictor: shapes, gradients, and patch-level SE(3) equivariance."""

from __future__ import annotations

import pytest
import torch

from equivision.data.procedural import make_shape
from equivision.errors import DegenerateGeometryError, ShapeError
from equivision.geometry import sample_surface_uniform
from equivision.groups import SE3
from equivision.models import build_model
from equivision.models.peif import MemoryBank, PatchAttention, PEIFConfig, PEIFNet
from equivision.recon.predict import predict_displacement
from equivision.testing import assert_equivariant, equivariance_error

SMALL = PEIFConfig(
    k=16, feature_dim=16, top_k=4, memory_heads=2, memory_items=8, mlp_a=[32, 32], mlp_d=[32, 32]
)


@pytest.fixture(scope="module")
def cloud_and_queries():
    mesh = make_shape("capsule", 1).mesh(32)
    cloud, _ = sample_surface_uniform(mesh, 1500, seed=0)
    g = torch.Generator().manual_seed(1)
    queries = cloud[:200] + 0.03 * torch.randn(200, 3, generator=g)
    return cloud, queries


def test_paper_configuration_builds_from_the_registry():
    net = build_model("peif")
    assert isinstance(net, PEIFNet) and net.cfg.k == 32 and net.cfg.memory_items == 596
    out = net(torch.randn(5, 32, 3), torch.randn(5, 3))
    assert out.shape == (5, 3)


def test_shape_errors():
    net = PEIFNet(SMALL)
    with pytest.raises(ShapeError, match="k=16"):
        net(torch.randn(5, 8, 3), torch.randn(5, 3))
    with pytest.raises(ShapeError):
        net(torch.randn(5, 16, 3), torch.randn(4, 3))
    with pytest.raises(DegenerateGeometryError, match="at least k=16"):
        predict_displacement(net, torch.randn(10, 3), torch.randn(3, 3))


def test_field_is_se3_equivariant_with_pose_normalisation(cloud_and_queries):
    """Rotating and translating cloud and queries together rotates the predicted displacement
    (a vector field: no translation), to < 1e-4 relative in float32, with random weights."""
    torch.manual_seed(0)
    net = PEIFNet(SMALL).eval()
    cloud, queries = cloud_and_queries
    se3 = SE3(translation_scale=0.5)
    elements = se3.random(6, seed=3)

    def act_in(g, x):
        c, q = x
        return se3.act(g, c), se3.act(g, q)

    def act_out(g, d):
        return d @ g[:3, :3].T

    err = assert_equivariant(
        lambda x: predict_displacement(net, *x), (cloud, queries), act_in, act_out, elements, tol=1e-4
    )
    assert err < 1e-4
    # the ablation without pose normalisation is not equivariant (the harness says so)
    ablation = equivariance_error(
        lambda x: predict_displacement(net, *x, pose_normalization=False),
        (cloud, queries),
        act_in,
        act_out,
        elements,
    )
    assert ablation > 1e-2


def test_gradients_float64():
    torch.manual_seed(0)
    att = PatchAttention(4, 2).double()
    f_q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    f_p = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: att(a, b), (f_q, f_p))
    bank = MemoryBank(2, 3, 4).double()
    assert torch.autograd.gradcheck(bank, (torch.randn(3, 4, dtype=torch.float64, requires_grad=True),))
    net = PEIFNet(
        PEIFConfig(k=4, feature_dim=4, top_k=2, memory_heads=1, memory_items=3, mlp_a=[6], mlp_d=[6])
    ).double()
    p = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(net, (p, q))


def test_memory_separation_loss_oracle():
    bank = MemoryBank(1, 3, 2)
    with torch.no_grad():
        bank.items.copy_(torch.tensor([[[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]]))
    # cosines: (0,1)=0.7071, (0,2)=-1 -> 0, (1,2)=-0.7071 -> 0; mean over the 6 ordered pairs
    assert float(bank.separation_loss().detach()) == pytest.approx(2 * 0.70710678 / 6, abs=1e-6)


def test_field_scales_with_the_cloud(cloud_and_queries):
    """Patch-radius normalisation makes the field equivariant to uniform scaling too."""
    torch.manual_seed(0)
    net = PEIFNet(SMALL).eval()
    cloud, queries = cloud_and_queries
    with torch.no_grad():
        for c in (0.01, 30.0):
            err = equivariance_error(lambda x: predict_displacement(net, *x), (cloud, queries),
                                     lambda k, x: (x[0] * k, x[1] * k), lambda k, d: d * k, [c])
            assert err < 1e-4
