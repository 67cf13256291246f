"""The equivariance harness passes equivariant functions and catches the others."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _devices import tol
from equivision.errors import EquivarianceError, InvalidInputError
from equivision.groups import C4, SE3, SO3, image_action, points_action
from equivision.testing import assert_equivariant, equivariance_error, equivariance_errors

ISO = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


def test_accepts_an_equivariant_convolution_to_1e5(device, dtype):
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    k = ISO.to(dtype=dtype, device=device)[None, None]
    act = image_action(C4)
    err = assert_equivariant(
        lambda t: F.conv2d(t, k, padding=1), x, act, act, C4.elements(device=device), tol=1e-5
    )
    # float64: 1.5e-16 was the worst of 50 seeds
    assert err < tol(dtype, f32=1e-6, f64=1e-14)


def test_catches_a_non_equivariant_convolution():
    x = torch.rand(2, 1, 16, 16)
    k = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    act = image_action(C4)
    with pytest.raises(EquivarianceError, match="not equivariant"):
        assert_equivariant(lambda t: F.conv2d(t, k, padding=1), x, act, act, C4.elements(), tol=1e-5)
    # the identity is never the failing element
    errs = equivariance_errors(lambda t: F.conv2d(t, k, padding=1), x, act, act, C4.elements())
    assert errs[0] < 1e-7 and min(errs[1:]) > 1e-2


def test_invariance_with_act_out_none():
    x = torch.rand(3, 8, 8)
    assert equivariance_error(lambda t: t.sum((-1, -2)), x, image_action(C4), None, C4.elements()) < 1e-6
    with pytest.raises(EquivarianceError):
        assert_equivariant(lambda t: t[..., 0, :].sum(-1), x, image_action(C4), None, C4.elements(), 1e-5)


def test_point_clouds_under_se3(device, dtype):
    se3 = SE3()
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    g = se3.random(6, seed=0, dtype=dtype, device=device)
    # float32: 1.7e-7 was the worst of 50 seeds, hence 1e-6
    t = tol(dtype, f32=1e-6, f64=1e-10)
    assert_equivariant(lambda p: p.mean(0, keepdim=True), x, points_action(se3), points_action(se3), g, t)
    with pytest.raises(EquivarianceError):
        # a fixed offset commutes with translations but not with rotations
        off = torch.tensor([[1.0, 0.0, 0.0]], dtype=dtype, device=device)
        assert_equivariant(lambda p: p + off, x, points_action(se3), points_action(se3), g, 1e-5)


def test_tuple_outputs_and_zero_outputs(device, dtype):
    so3 = SO3()
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
    g = so3.random(3, seed=1, dtype=dtype, device=device)

    def fn(p):
        return p.mean(0), p.norm(dim=-1)

    def act_out(r, y):
        return (y[0] @ r.T, y[1])

    # float32: 7.8e-8 was the worst of 50 seeds, hence 1e-6
    assert equivariance_error(fn, x, points_action(so3), act_out, g) < tol(dtype, f32=1e-6, f64=1e-12)
    # an all-zero output falls back to the absolute error rather than dividing by zero
    assert equivariance_error(lambda p: p * 0, x, points_action(so3), points_action(so3), g) == 0.0


def test_harness_argument_errors():
    x = torch.randn(4, 4)
    act = image_action(C4)
    with pytest.raises(InvalidInputError):
        assert_equivariant(lambda t: t, x, act, act, [], tol=1e-5)
    with pytest.raises(InvalidInputError):
        assert_equivariant(lambda t: t, x, act, act, C4.elements(), tol=0)
    with pytest.raises(InvalidInputError):
        equivariance_error(lambda t: t, x, act, lambda g, y: y[:2], C4.elements())
