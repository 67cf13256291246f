"""Wigner-d against Wigner's explicit sum, stability at l = 256, real Wigner-D against e3nn,
and exact rotation of band-limited signals (equivariance through the harness)."""

from __future__ import annotations

import math

import pytest
import torch
from _sphere_oracles import slow_wigner_d

from _devices import tol
from equivision.errors import InvalidInputError
from equivision.groups import SO3
from equivision.sphere import (
    Grid,
    isht,
    real_sph_harm_points,
    rotate,
    rotate_coeffs,
    sht,
    wigner_d,
    wigner_D_real,
)
from equivision.testing import assert_equivariant

F64 = torch.float64


def test_wigner_d_matches_the_explicit_sum() -> None:
    betas = [0.0, 0.3, 1.1, math.pi / 2, 2.7, math.pi, -0.8]
    ds = wigner_d(6, torch.tensor(betas, dtype=F64))
    worst = 0.0
    for l in (0, 1, 2, 5, 6):
        for i, b in enumerate(betas):
            for m in range(-l, l + 1):
                for n in range(-l, l + 1):
                    worst = max(worst, abs(float(ds[l][i, m + l, n + l]) - slow_wigner_d(l, m, n, b)))
    assert worst < 1e-13


def test_wigner_d_l1_closed_form() -> None:
    b = 0.9
    d1 = wigner_d(1, b)[1]
    c, s = math.cos(b), math.sin(b)
    r2 = math.sqrt(2)
    want = torch.tensor([[(1 + c) / 2, s / r2, (1 - c) / 2],
                         [-s / r2, c, s / r2],
                         [(1 - c) / 2, -s / r2, (1 + c) / 2]], dtype=F64)
    assert torch.allclose(d1, want, atol=1e-15)


def test_wigner_d_is_stable_to_l_256() -> None:
    L = 256
    betas = torch.tensor([0.4, 0.9, 1.3, math.pi - 0.4, 1e-3], dtype=F64)
    (d,) = wigner_d(L, betas, l_min=L)
    eye = torch.eye(2 * L + 1, dtype=F64)
    orth = (d @ d.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2))
    assert float(orth.max()) < 1e-10
    # the addition law d(β1) d(β2) = d(β1 + β2)
    assert (d[0] @ d[1] - d[2]).abs().max() < 1e-10
    # and the symmetry d_mn(π − β) = (−1)^{l+n} d_{−m,n}(β)
    d_pi = d[3]
    n = torch.arange(-L, L + 1)
    sign = (1 - 2 * ((L + n) % 2)).to(F64)
    assert (d_pi - d[0].flip(0) * sign).abs().max() < 1e-10


def test_wigner_D_real_is_a_representation(device: str, dtype: torch.dtype) -> None:
    r = SO3().random(4, seed=2, dtype=dtype, device=device)
    d_a, d_b = wigner_D_real(7, r[:2]), wigner_D_real(7, r[2:])
    d_ab = wigner_D_real(7, r[:2] @ r[2:])
    # float32: over 20 seeds the worst product error was 4.3e-7, orthogonality 1.2e-7
    t = tol(dtype, f32=5e-6, f64=1e-12)
    for l in range(8):
        assert d_a[l].dtype == dtype and d_a[l].device.type == device
        assert (d_ab[l] - d_a[l] @ d_b[l]).abs().max() < t
        eye = torch.eye(2 * l + 1, dtype=dtype, device=device)
        assert (d_a[l] @ d_a[l].transpose(-1, -2) - eye).abs().max() < t
    # D^1 is the rotation matrix itself in the (y, z, x) order of the l = 1 harmonics
    perm = [1, 2, 0]
    assert torch.allclose(d_a[1], r[:2][:, perm][:, :, perm], atol=t)


def test_wigner_D_real_matches_e3nn_up_to_a_change_of_basis() -> None:
    o3 = pytest.importorskip("e3nn.o3")
    gen = torch.Generator().manual_seed(0)
    pts = torch.nn.functional.normalize(torch.randn(400, 3, dtype=F64, generator=gen), dim=-1)
    rots = SO3().random(3, seed=5, dtype=F64)
    ours_d = wigner_D_real(6, rots)
    ours_y = real_sph_harm_points(6, pts)
    for l in range(7):
        theirs_y = o3.spherical_harmonics(l, pts, normalize=True, normalization="integral")
        mine = ours_y[:, l * l:(l + 1) ** 2]
        # both are orthonormal real bases of the degree-l harmonics: fit Q with Y_e3nn = Q Y_ours
        q = torch.linalg.lstsq(mine, theirs_y).solution.T
        assert (mine @ q.T - theirs_y).abs().max() < 1e-10
        assert (q @ q.T - torch.eye(2 * l + 1, dtype=F64)).abs().max() < 1e-10
        theirs_d = o3.Irrep(l, (-1) ** l).D_from_matrix(rots)
        # e3nn goes through float32 Euler angles internally: agreement to ~1e-7
        assert (q @ ours_d[l] @ q.T - theirs_d).abs().max() < 1e-5


def _random_coeffs(b: int, batch=(), seed=0) -> torch.Tensor:
    return torch.randn(*batch, b * b, dtype=F64, generator=torch.Generator().manual_seed(seed))


def test_rotate_matches_resampling_the_signal(device: str, dtype: torch.dtype) -> None:
    b = 8
    c = _random_coeffs(b, (2,))
    r = SO3().random(3, seed=1, dtype=F64)
    pts = Grid(b).points()
    # f(R⁻¹x) evaluated directly from the harmonics at the rotated points (float64, CPU)
    back = torch.einsum("pab,jka->pjkb", r, pts)  # rows of Rᵀx
    want = torch.einsum("pjki,ci->pcjk", real_sph_harm_points(b - 1, back), c)
    got = rotate(isht(c.to(device, dtype)), r.to(device, dtype)[:, None])
    assert got.shape == (3, 2, 16, 16) and got.dtype == dtype and got.device.type == device
    # float32: 2.3e-7 of the signal's peak was the worst of 10 seeds
    bound = tol(dtype, f32=2e-6 * float(want.abs().max()), f64=1e-12)
    assert (got.cpu().double() - want).abs().max() < bound


def test_sht_is_equivariant_through_the_harness(device: str) -> None:
    b = 10
    f = isht(_random_coeffs(b, (3,), seed=4)).to(device)
    rots = SO3().random(5, seed=7, dtype=F64, device=device)

    def act_grid(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rotate(x, r)

    def act_coeffs(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ds = wigner_D_real(b - 1, r)
        return torch.cat([c[..., l * l:(l + 1) ** 2] @ ds[l].T for l in range(b)], dim=-1)

    err = assert_equivariant(sht, f, act_grid, act_coeffs, rots, tol=1e-12)
    assert err < 1e-12
    # float32: the same identity at single precision
    err32 = assert_equivariant(sht, f.float(), lambda r, x: rotate(x, r.float()),
                               lambda r, c: act_coeffs(r, c.double()).float(), rots, tol=1e-5)
    assert err32 < 1e-5


def test_rotate_composes_and_inverts(device: str, dtype: torch.dtype) -> None:
    c = _random_coeffs(6, (4,), seed=3).to(device, dtype)
    r = SO3().random(2, seed=9, dtype=dtype, device=device)
    # float32: 9.5e-7 was the worst of 10 seeds
    t = tol(dtype, f32=1e-5, f64=1e-12)
    twice = rotate_coeffs(rotate_coeffs(c, r[1]), r[0])
    assert twice.dtype == dtype and twice.device.type == device
    assert (twice - rotate_coeffs(c, r[0] @ r[1])).abs().max() < t
    back = rotate_coeffs(rotate_coeffs(c, r[0]), r[0].T)
    assert (back - c).abs().max() < t
    # rotation preserves the power per degree
    rc = rotate_coeffs(c, r[0])
    for l in range(6):
        sl = slice(l * l, (l + 1) ** 2)
        assert torch.allclose(rc[..., sl].norm(dim=-1), c[..., sl].norm(dim=-1), atol=t)


def test_gradcheck_rotate() -> None:
    f = torch.randn(2, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    r = SO3().random(1, seed=3, dtype=F64)[0]
    assert torch.autograd.gradcheck(lambda x: rotate(x, r), (f,))


def test_bad_rotations_raise_typed_errors() -> None:
    c = _random_coeffs(4)
    with pytest.raises(InvalidInputError, match="orthogonal"):
        rotate_coeffs(c, torch.eye(3, dtype=F64) * 2)
    with pytest.raises(InvalidInputError, match="reflection"):
        rotate_coeffs(c, torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=F64)))
    with pytest.raises(InvalidInputError):
        rotate(isht(c), torch.eye(2, dtype=F64))
    nan_r = torch.eye(3, dtype=F64)
    nan_r[0, 0] = float("nan")
    with pytest.raises(InvalidInputError):
        wigner_D_real(3, nan_r)
    with pytest.raises(InvalidInputError):
        wigner_d(-1, 0.3)
    with pytest.raises(InvalidInputError):
        wigner_d(3, float("nan"))
