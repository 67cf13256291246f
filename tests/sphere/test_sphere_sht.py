"""Grid, quadrature, real spherical harmonics and the SHT against SciPy, NumPy and torch-harmonics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _sphere_oracles import import_torch_harmonics, scipy_real_sph_harm, slow_sht

from _devices import tol
from equivision.errors import InvalidInputError, ShapeError
from equivision.sphere import (
    Grid,
    coeff_index,
    complex_coeffs,
    degree_order,
    isht,
    real_sph_harm,
    real_sph_harm_points,
    sht,
)


def _bandlimited(b: int, batch=(2,), dtype=torch.float64, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random coefficients and their grid signal, synthesised by direct evaluation of the
    harmonics (independent of ``isht``) for small ``B``."""
    gen = torch.Generator().manual_seed(seed)
    c = torch.randn(*batch, b * b, generator=gen, dtype=torch.float64)
    t, p = Grid(b).angles()
    f = torch.einsum("jki,...i->...jk", real_sph_harm(b - 1, t, p), c)
    return c.to(dtype), f.to(dtype)


def test_grid_points_and_weights_integrate_exactly() -> None:
    g = Grid(8)
    assert g.shape == (16, 16)
    t = g.theta()
    assert torch.allclose(t, math.pi * (2 * torch.arange(16, dtype=torch.float64) + 1) / 32)
    pts = g.points()
    assert torch.allclose(pts.norm(dim=-1), torch.ones(16, 16, dtype=torch.float64))
    assert abs(float(g.weights().sum()) * 16 - 4 * math.pi) < 1e-12
    # ∫ z^k dΩ = 4π/(k+1) for even k, 0 for odd: exact for degree < 2B = 16
    for k in range(0, 15):
        want = 4 * math.pi / (k + 1) if k % 2 == 0 else 0.0
        assert abs(float(g.integrate(pts[..., 2] ** k)) - want) < 1e-12


def test_weights_match_the_closed_form_integral_of_x2y2z4() -> None:
    # ∫ x²y²z⁴ dΩ = 4π · 1·1·3 / (3·5·7·9·11) ... computed by the moment formula
    def moment(a: int, b: int, c: int) -> float:
        g = math.gamma
        return 2 * g((a + 1) / 2) * g((b + 1) / 2) * g((c + 1) / 2) / g((a + b + c + 3) / 2)

    g8 = Grid(8)
    x, y, z = g8.points().unbind(-1)
    assert abs(float(g8.integrate(x**2 * y**2 * z**4)) - moment(2, 2, 4)) < 1e-13
    assert abs(float(g8.integrate(x**4 * y**6 * z**2)) - moment(4, 6, 2)) < 1e-13


def test_real_sph_harm_matches_scipy() -> None:
    gen = np.random.default_rng(0)
    theta = gen.uniform(0, np.pi, 200)
    phi = gen.uniform(-np.pi, 2 * np.pi, 200)
    ours = real_sph_harm(24, torch.from_numpy(theta), torch.from_numpy(phi)).numpy()
    ref = scipy_real_sph_harm(24, theta, phi)
    assert np.abs(ours - ref).max() < 1e-12
    # l = 1 is (y, z, x) · sqrt(3/4π)
    pts = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=-1)
    y1 = real_sph_harm_points(1, pts)[:, 1:4]
    assert torch.allclose(y1, math.sqrt(3 / (4 * math.pi)) * pts[:, [1, 2, 0]], atol=1e-14)


def test_coefficient_order() -> None:
    ls, ms = degree_order(4)
    assert [coeff_index(int(l), int(m)) for l, m in zip(ls, ms, strict=True)] == list(range(16))
    assert coeff_index(3, -2) == 10
    with pytest.raises(InvalidInputError):
        coeff_index(1, 2)


@pytest.mark.parametrize("b", [1, 2, 3, 8, 17, 32])
def test_round_trip_float64(b: int, device: str) -> None:
    c, f = _bandlimited(b, batch=(2, 3))
    c, f = c.to(device), f.to(device)
    assert isht(c).device.type == device and sht(f).dtype == torch.float64
    assert (isht(c) - f).abs().max() < 1e-10
    assert (sht(f) - c).abs().max() < 1e-10
    assert (sht(isht(c)) - c).abs().max() < 1e-10


@pytest.mark.parametrize("b", [4, 16, 64])
def test_round_trip_float32(b: int, device: str) -> None:
    c64 = torch.randn(3, b * b, dtype=torch.float64, generator=torch.Generator().manual_seed(b))
    c, f = c64.to(torch.float32), isht(c64).to(torch.float32)  # isht(float64) checked above
    c, f = c.to(device), f.to(device)
    scale = float(c.abs().max())
    assert sht(f).dtype == torch.float32 and isht(c).dtype == torch.float32
    assert sht(f).device.type == device and isht(c).device.type == device
    assert (sht(isht(c)) - c).abs().max() / scale < 1e-5
    assert (sht(f) - c).abs().max() / scale < 1e-5


def test_round_trip_bandwidth_128() -> None:
    c = torch.randn(2, 128 * 128, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert (sht(isht(c)) - c).abs().max() < 1e-10
    c32 = c.to(torch.float32)
    assert (sht(isht(c32)) - c32).abs().max() / float(c32.abs().max()) < 1e-5


def test_sht_matches_slow_numpy_quadrature() -> None:
    gen = np.random.default_rng(3)
    f = gen.normal(size=(2, 12, 12))  # not band-limited: the quadrature itself is compared
    ref = slow_sht(f, 5)
    ours = sht(torch.from_numpy(f)).numpy()
    assert np.abs(ours - ref).max() < 1e-12


def test_sht_matches_torch_harmonics() -> None:
    th = import_torch_harmonics()
    from torch_harmonics.quadrature import precompute_latitudes

    b = 12
    c, _ = _bandlimited(b, batch=(3,))
    nlat, nlon = 2 * b + 2, 2 * b  # their equiangular grid includes the poles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsht = th.RealSHT(nlat, nlon, lmax=b, mmax=b, grid="equiangular", norm="ortho", csphase=True)
        tsht = tsht.double()
    theta, _ = precompute_latitudes(nlat, grid="equiangular")  # colatitudes, poles included
    theta = theta.to(torch.float64)
    phi = 2 * math.pi * torch.arange(nlon, dtype=torch.float64) / nlon
    tt, pp = torch.meshgrid(theta, phi, indexing="ij")
    f_th = torch.einsum("jki,ni->njk", real_sph_harm(b - 1, tt, pp), c)
    theirs = tsht(f_th)  # (N, l, m ≥ 0) complex, Condon–Shortley, orthonormal
    ours = complex_coeffs(c)[..., b - 1:]  # (N, l, m ≥ 0)
    assert (theirs - ours).abs().max() < 1e-10
    # and our forward transform of our own grid gives the same numbers
    _, f = _bandlimited(b, batch=(3,))
    assert (complex_coeffs(sht(f))[..., b - 1:] - theirs).abs().max() < 1e-10


def test_batching_over_leading_dims_and_noncontiguous_input(device: str, dtype: torch.dtype) -> None:
    c, f = _bandlimited(6, batch=(2, 3, 4), dtype=dtype)
    c, f = c.to(device), f.to(device)
    out = sht(f.transpose(0, 1))
    assert out.shape == (3, 2, 4, 36) and out.dtype == dtype and out.device.type == device
    # float32: 4.6e-7 was the worst of 5 seeds
    assert torch.allclose(out, c.transpose(0, 1), atol=tol(dtype, f32=1e-5, f64=1e-12))
    assert isht(c[0, 0, 0]).shape == (12, 12)
    assert sht(f[0, 0, 0]).shape == (36,)


def test_gradcheck_sht_isht() -> None:
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(2, 6, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    c = torch.randn(2, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(sht, (f,))
    assert torch.autograd.gradcheck(isht, (c,))
    # from B = 24 on, isht takes its outer-axis FFT route
    big_f = torch.randn(2, 48, 48, dtype=torch.float64, generator=gen, requires_grad=True)
    big_c = torch.randn(2, 576, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(sht, (big_f,), fast_mode=True)
    assert torch.autograd.gradcheck(isht, (big_c,), fast_mode=True)


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(ShapeError, match="square"):
        sht(torch.zeros(8, 6))
    with pytest.raises(ShapeError, match="even"):
        sht(torch.zeros(7, 7))
    with pytest.raises(ShapeError, match="bandwidth"):
        sht(torch.zeros(8, 8), 3)
    with pytest.raises(ShapeError):
        sht(torch.zeros(8))
    f = torch.zeros(2, 8, 8)
    f[1, 3, 2] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        sht(f)
    with pytest.raises(InvalidInputError, match="NaN"):
        isht(torch.full((16,), float("inf")))
    with pytest.raises(InvalidInputError, match="floating"):
        sht(torch.zeros(8, 8, dtype=torch.int64))
    with pytest.raises(InvalidInputError, match="float32 or float64"):
        sht(torch.zeros(8, 8, dtype=torch.float16))
    with pytest.raises(InvalidInputError, match="float32 or float64"):
        isht(torch.zeros(16, dtype=torch.complex64))
    with pytest.raises(ShapeError, match="B²"):
        isht(torch.zeros(3, 10))
    with pytest.raises(ShapeError, match="bandwidth"):
        isht(torch.zeros(16), 3)
    with pytest.raises(InvalidInputError):
        Grid(0)
    with pytest.raises(InvalidInputError):
        sht([[0.0, 1.0], [2.0, 3.0]])  # type: ignore[arg-type]
