"""The Vector Neurons layers' fast code paths against their autograd references."""

from __future__ import annotations

import pytest
import torch

from equivision.nn import vector_neurons as vn


def _pair(shape: tuple[int, ...], seed: int, *, shared: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*shape, generator=g, dtype=torch.float64)
    kshape = (shape[0], 1, *shape[2:]) if shared else shape
    k = torch.randn(*kshape, generator=g, dtype=torch.float64)
    return q, k


@pytest.mark.parametrize("shape", [(2, 4, 3), (2, 4, 3, 5), (2, 3, 3, 4, 6)])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_leaky_project_equals_reference(shape: tuple[int, ...], shared: bool, slope: float) -> None:
    q, k = _pair(shape, 0, shared=shared)
    outs, grads = [], []
    for f in (vn._leaky_project, vn._leaky_project_reference):
        qq, kk = q.clone().requires_grad_(), k.clone().requires_grad_()
        out = f(qq, kk, slope, 1e-6)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        (out * w).sum().backward()
        outs.append(out.detach())
        grads.append((qq.grad, kk.grad))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-13)
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # both branches of the projection are exercised
    s = (q * k).sum(2)
    assert (s < 0).any() and (s > 0).any()


def test_leaky_project_gradcheck_and_zero_cases() -> None:
    q, k = _pair((2, 3, 3, 4), 2)
    assert torch.autograd.gradcheck(lambda a, b: vn._leaky_project(a, b, 0.2, 1e-6),
                                    (q.clone().requires_grad_(), k.clone().requires_grad_()))
    # zero directions and zero inputs put s = 0 exactly on the kink (where gradcheck's finite
    # differences straddle it): there the gradients must be the reference's, and finite
    k[0, 0] = 0.0
    q[1, 1] = 0.0
    qq, kk = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    vn._leaky_project_reference(qq, kk, 0.2, 1e-6).sum().backward()
    q2, k2 = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    vn._leaky_project(q2, k2, 0.2, 1e-6).sum().backward()
    torch.testing.assert_close(q2.grad, qq.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(k2.grad, kk.grad, rtol=0, atol=1e-12)
    assert torch.isfinite(q2.grad).all() and torch.isfinite(k2.grad).all()


def test_mix_equals_einsum_on_every_layout() -> None:
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64)
    for shape in ((2, 4, 3), (2, 4, 3, 7), (2, 4, 3, 7, 3)):
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        ref = torch.einsum("oc,bc...->bo...", w, x)
        out = vn._mix(x, w)
        assert out.is_contiguous()
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
