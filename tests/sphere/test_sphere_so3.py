"""SO(3) correlation against a brute-force sum with Wigner-D, the Euler grid against
equivision.groups.SO3, and align recovering random rotations."""

from __future__ import annotations

import math

import pytest
import torch

from _devices import tol
from equivision.errors import InvalidInputError, ShapeError
from equivision.groups import SO3
from equivision.sphere import (
    align,
    correlation_at,
    cross_spectrum,
    isht,
    rotate,
    rotation_to_so3_grid,
    sht,
    so3_correlation,
    so3_grid_angles,
    so3_grid_rotations,
    so3_grid_to_rotation,
    unravel_so3_index,
    wigner_D_real,
)

F64 = torch.float64


def _coeffs(b: int, batch=(), seed=0, dtype=F64) -> torch.Tensor:
    return torch.randn(*batch, b * b, dtype=F64, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _brute_force(fc: torch.Tensor, gc: torch.Tensor, rots: torch.Tensor) -> torch.Tensor:
    """Σ_c Σ_l f̂_lᵀ D^l(R) ĝ_l: one rotation at a time, with the real Wigner-D matrices."""
    b = math.isqrt(fc.shape[-1])
    ds = wigner_D_real(b - 1, rots)
    out = 0.0
    for l in range(b):
        sl = slice(l * l, (l + 1) ** 2)
        rotated = torch.einsum("pmn,...cn->...pcm", ds[l], gc[..., sl])
        out = out + (fc[..., None, :, sl] * rotated).sum(dim=(-1, -2))
    return out


@pytest.mark.parametrize(("b", "out_b"), [(4, 4), (5, 7)])
def test_so3_correlation_matches_brute_force(b: int, out_b: int, device: str, dtype: torch.dtype) -> None:
    fc, gc = _coeffs(b, (2, 3), seed=1), _coeffs(b, (2, 3), seed=2)  # the float64 CPU reference
    fx, gx = fc.to(device, dtype), gc.to(device, dtype)
    corr = so3_correlation(isht(fx), isht(gx), out_bandwidth=out_b)
    assert corr.shape == (2, 2 * out_b, 2 * out_b, 2 * out_b)
    assert corr.dtype == dtype and corr.device.type == device
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 2 * out_b, (12, 3), generator=gen)
    want = _brute_force(fc, gc, so3_grid_to_rotation(idx, out_b))
    got = corr[:, idx[:, 0], idx[:, 1], idx[:, 2]].cpu().double()
    # float32: 2.2e-7 of the peak was the worst of 5 seeds at each bandwidth pair
    rel = tol(dtype, f32=5e-6, f64=1e-10)
    assert (got - want).abs().max() < rel * float(want.abs().max())
    # the correlation between grid points is the same band-limited function
    r = SO3().random(5, seed=4, dtype=F64)
    h = cross_spectrum(fx, gx)
    brute = _brute_force(fc, gc, r)
    at = correlation_at(h, r.to(device, dtype).expand(2, 5, 3, 3))
    assert at.dtype == dtype and at.device.type == device
    bound = tol(dtype, f32=5e-6 * float(brute.abs().max()), f64=1e-10)
    assert (at.cpu().double() - brute).abs().max() < bound


def test_so3_correlation_is_invariant_to_rotating_both_signals(device: str, dtype: torch.dtype) -> None:
    b = 5
    fc, gc = (_coeffs(b, (3,), seed=s, dtype=dtype).to(device) for s in (5, 6))
    q = SO3().random(1, seed=8, dtype=dtype, device=device)[0]
    h1 = cross_spectrum(fc, gc)
    from equivision.sphere import rotate_coeffs

    h2 = cross_spectrum(rotate_coeffs(fc, q), rotate_coeffs(gc, q))
    r = SO3().random(6, seed=9, dtype=dtype, device=device)
    # C'(R) = ∫ (Qf)(x) (R Q g)(x) = C(Qᵀ R Q); float32: 3.5e-7 of the peak (about 20) was the
    # worst of 5 seeds, so 1e-4 absolute
    assert torch.allclose(correlation_at(h2, r), correlation_at(h1, q.T @ r @ q),
                          atol=tol(dtype, f32=1e-4, f64=1e-10))


def test_gradcheck_so3_correlation() -> None:
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(2, 4, 4, dtype=F64, generator=gen, requires_grad=True)
    g = torch.randn(2, 4, 4, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: so3_correlation(a, b), (f, g))


def test_euler_grid_matches_so3_from_euler_zyz(device: str) -> None:
    b = 3
    a, bt, g = so3_grid_angles(b, device=device)
    rots = so3_grid_rotations(b, device=device)
    assert rots.shape == (6, 6, 6, 3, 3) and rots.device.type == device
    rots = rots.cpu()
    a, bt, g = a.cpu(), bt.cpu(), g.cpu()
    assert torch.allclose(rots[2, 4, 5], SO3.from_euler_zyz(a[2], bt[4], g[5]))
    idx = torch.tensor([[2, 4, 5], [0, 0, 0], [5, 5, 1]])
    assert torch.allclose(so3_grid_to_rotation(idx, b), rots[idx[:, 0], idx[:, 1], idx[:, 2]])
    assert torch.equal(rotation_to_so3_grid(rots[idx[:, 0], idx[:, 1], idx[:, 2]], b), idx)
    flat = idx[:, 0] * 36 + idx[:, 1] * 6 + idx[:, 2]
    assert torch.equal(unravel_so3_index(flat, b), idx)
    # the nearest grid point of a perturbed grid rotation is that grid point
    small = SO3.from_rotvec(torch.tensor([0.01, -0.02, 0.015], dtype=F64))
    assert torch.equal(rotation_to_so3_grid(rots[1, 2, 3] @ small, b), torch.tensor([1, 2, 3]))
    with pytest.raises(InvalidInputError):
        so3_grid_to_rotation(torch.tensor([[0, 6, 0]]), b)
    with pytest.raises(InvalidInputError):
        so3_grid_to_rotation(torch.tensor([1, 2]), b)


def _half_diagonal(b: int) -> float:
    """Half the diagonal of one cell of the Euler grid (α, γ step π/B, β step π/(2B))."""
    return 0.5 * math.sqrt(2 * (math.pi / b) ** 2 + (math.pi / (2 * b)) ** 2)


@pytest.mark.parametrize("b", [16, 32])
def test_align_recovers_random_rotations(b: int, device: str) -> None:
    f = isht(_coeffs(b, (32,), seed=b, dtype=torch.float32).to(device))  # 32 channels
    r_true = SO3().random(4, seed=b + 1, device=device)
    g = rotate(f, r_true[:, None].transpose(-1, -2))  # g = R⁻¹·f, so rotate(g, R) = f
    r_grid, s_grid = align(f, g, refine=False)
    err_grid = SO3.geodesic_distance(r_grid.double(), r_true.double())
    assert float(err_grid.max()) < _half_diagonal(b)
    r_est, score = align(f, g)
    assert r_est.shape == (4, 3, 3) and r_est.dtype == torch.float32 and r_est.device.type == device
    err = SO3.geodesic_distance(r_est.double(), r_true.double()) * 180 / math.pi
    assert float(err.max()) < 0.1
    assert bool((score >= s_grid - 1e-3 * s_grid.abs()).all())
    # the score is the correlation: Σ ∫ f·f for a perfect alignment
    assert torch.allclose(score, (sht(f) ** 2).sum().expand(4), rtol=1e-4)
    aligned = rotate(g, r_est[:, None])
    assert float((aligned - f).abs().max()) < 1e-3 * float(f.abs().max())


def test_align_bandwidth_64_and_upsampled_grid() -> None:
    b = 64
    f = isht(_coeffs(b, (32,), seed=3, dtype=torch.float32))
    r_true = SO3().random(1, seed=11)
    g = rotate(f, r_true[0].T)
    r_est, _ = align(f, g)
    err = SO3.geodesic_distance(r_est.double(), r_true[0].double()) * 180 / math.pi
    assert float(err) < 0.1
    r_grid, _ = align(f, g, refine=False)
    assert float(SO3.geodesic_distance(r_grid.double(), r_true[0].double())) < _half_diagonal(b)
    # a finer grid (the paper's upsampling, done spectrally) shrinks the grid-only error bound
    small = isht(_coeffs(32, (8,), seed=4, dtype=torch.float32))
    small_g = rotate(small, r_true[0].T)
    r4, _ = align(small, small_g, refine=False, out_bandwidth=64)
    err4 = SO3.geodesic_distance(r4.double(), r_true[0].double())
    assert float(err4) < _half_diagonal(64)


def test_align_batches_over_pairs_with_broadcasting(device: str, dtype: torch.dtype) -> None:
    b = 8
    f = isht(_coeffs(b, (2, 4), seed=21, dtype=dtype).to(device))  # 2 pairs, 4 channels
    r_true = SO3().random(2, seed=22, dtype=dtype, device=device)
    g = rotate(f, r_true[:, None].transpose(-1, -2))
    r_est, score = align(f, g)
    assert r_est.shape == (2, 3, 3) and score.shape == (2,)
    assert r_est.dtype == score.dtype == dtype and r_est.device.type == device
    # the same 0.01° for float32: 2.7e-5° was the worst of 5 seeds
    assert float(SO3.geodesic_distance(r_est, r_true).max()) * 180 / math.pi < 0.01


def test_align_reaches_the_maximum_for_a_symmetric_signal(device: str, dtype: torch.dtype) -> None:
    # Y_{1,0}-like signals are symmetric about z: every Rz(φ) is a maximiser, and the grid
    # has no point at β = 0; refinement must still climb to the maximum Σ ĝ²
    c = torch.zeros(3, 64, dtype=dtype, device=device)
    c[:, 2] = 1.0
    c[:, 6] = 0.3  # (l, m) = (2, 0)
    g = isht(c)
    r, score = align(g, g)
    assert r.dtype == score.dtype == dtype and r.device.type == device
    # float32 missed the maximum by 5.2e-7
    assert abs(float(score) - float((c.double() ** 2).sum())) < tol(dtype, f32=1e-5, f64=1e-9)
    assert float(SO3.to_euler_zyz(r)[1]) < 1e-6  # β = 0: a rotation about z


def test_bad_inputs_raise_typed_errors() -> None:
    f = torch.zeros(3, 8, 8)
    with pytest.raises(ShapeError, match="channels"):
        so3_correlation(f, torch.zeros(2, 8, 8))
    with pytest.raises(ShapeError, match="bandwidth"):
        so3_correlation(f, torch.zeros(3, 6, 6))
    with pytest.raises(ShapeError, match="channel"):
        align(torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(ShapeError, match="square"):
        align(torch.zeros(3, 8, 6), torch.zeros(3, 8, 6))
    bad = torch.randn(3, 8, 8)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        align(bad, torch.randn(3, 8, 8))
    with pytest.raises(InvalidInputError, match="dtype"):
        so3_correlation(f, f.double())
    with pytest.raises(InvalidInputError, match="out_bandwidth"):
        so3_correlation(torch.randn(2, 8, 8), torch.randn(2, 8, 8), out_bandwidth=2)
    with pytest.raises(InvalidInputError, match="orthogonal"):
        rotation_to_so3_grid(torch.ones(3, 3), 4)
