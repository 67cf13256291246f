"""Checks shared by the two scale-layer test files (magnified kernels and zoomed grids)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from equivision.groups import ScaleTranslation2D, image_action
from equivision.nn import GroupProjection
from equivision.testing import assert_equivariant, equivariance_error


def blob_detector_errors(make_lift: Callable[..., torch.nn.Module], kernel_size: int,
                         sigma: float, blob_sigma: float, scales: Sequence[float],
                         magnifications: Sequence[float], tol: float) -> tuple[float, float]:
    """The classic scale-space blob detector: one centre-surround kernel (Gaussians of σ and
    2σ) lifted over ``scales``, then the max over scales and space, on a Gaussian blob.
    Returns ``(error over the scales, error with one scale)`` under the magnifications; the
    first goes through :func:`assert_equivariant` with ``tol`` (invariance)."""
    c = torch.arange(float(kernel_size), dtype=torch.float64) - kernel_size // 2
    r2 = c[:, None] ** 2 + c[None, :] ** 2

    def gauss(s: float) -> torch.Tensor:
        return torch.exp(-r2 / (2 * s * s)) / (2 * math.pi * s * s)

    t = torch.arange(41.0, dtype=torch.float64) - 20
    blob = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * blob_sigma**2))[None, None]
    g = [torch.tensor([0.0, 0.0, m], dtype=torch.float64) for m in magnifications]
    act = image_action(ScaleTranslation2D())
    errs = []
    for which in (tuple(scales), (1.0,)):
        det = make_lift(1, 1, kernel_size, which, bias=False).double()
        with torch.no_grad():
            det.weight[0, 0] = gauss(sigma) - gauss(2 * sigma)

        def fn(x: torch.Tensor, det: torch.nn.Module = det) -> torch.Tensor:
            return GroupProjection("max")(det(x)).amax((-2, -1))

        errs.append(assert_equivariant(fn, blob, act, None, g, tol=tol) if len(errs) == 0
                    else equivariance_error(fn, blob, act, None, g))
    return errs[0], errs[1]


def gradcheck_lift_then_group_conv(lift: torch.nn.Module, conv: torch.nn.Module) -> bool:
    """``torch.autograd.gradcheck`` (float64) of lift → tanh → group conv, in the input and
    both layers' weights."""
    lift, conv = lift.double(), conv.double()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor, wl: torch.Tensor, wc: torch.Tensor) -> torch.Tensor:
        h = torch.func.functional_call(lift, {"weight": wl, "bias": lift.bias}, (x,))
        return torch.func.functional_call(conv, {"weight": wc, "bias": conv.bias},
                                          (torch.tanh(h),))

    wl = lift.weight.detach().clone().requires_grad_(True)
    wc = conv.weight.detach().clone().requires_grad_(True)
    return torch.autograd.gradcheck(f, (x, wl, wc), eps=1e-6, atol=1e-7)
