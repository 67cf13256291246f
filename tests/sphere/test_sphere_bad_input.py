"""Edge and bad inputs of the sphere engine: empty batches, overflow, mismatched rotation
batches, non-rotations, and alignments that have no answer (zero or constant signals)."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from equivision.errors import InvalidInputError, NotARotationError, ShapeError
from equivision.groups import SO3
from equivision.sphere import AlignResult, Grid, align, isht, rotate, sht, so3_correlation

F64 = torch.float64


def _coeffs(b: int, lead: tuple[int, ...], seed: int, dtype=F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*lead, b * b, generator=g, dtype=F64).to(dtype)


# ----- empty batches ---------------------------------------------------------------------------
@pytest.mark.parametrize("lead", [(0,), (2, 0), (0, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_empty_batches_give_empty_results(lead, dtype):
    b = 4
    out = sht(torch.zeros(*lead, 2 * b, 2 * b, dtype=dtype))
    assert out.shape == (*lead, b * b) and out.dtype == dtype
    grid = isht(torch.zeros(*lead, b * b, dtype=dtype))
    assert grid.shape == (*lead, 2 * b, 2 * b) and grid.dtype == dtype
    r = rotate(torch.zeros(*lead, 2 * b, 2 * b, dtype=dtype), torch.eye(3, dtype=dtype))
    assert r.shape == (*lead, 2 * b, 2 * b)


def test_empty_rotation_batch_broadcasts_to_empty():
    f = isht(_coeffs(4, (), seed=0))
    out = rotate(f, torch.eye(3, dtype=F64).expand(0, 3, 3))
    assert out.shape == (0, 8, 8)


# ----- non-finite input and overflow ------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_signals_and_coefficients_are_refused(bad):
    x = torch.randn(2, 8, 8)
    x[1, 3, 4] = bad
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        sht(x)
    c = torch.randn(3, 16)
    c[0, 5] = bad
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        isht(c)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        rotate(c, torch.eye(3), coeffs=True)


def test_transforms_that_overflow_are_refused():
    big = torch.full((8, 8), 3e38)  # finite in float32, but its l = 0 coefficient is not
    with pytest.raises(InvalidInputError, match=r"overflows torch\.float32"):
        sht(big)
    with pytest.raises(InvalidInputError, match="overflows"):
        isht(torch.full((16,), 3e38))
    with pytest.raises(InvalidInputError, match="overflows"):
        rotate(big, torch.eye(3))
    # the same values in float64 are fine, and exact: a constant has only f̂_0 = c √(4π)
    c = sht(big.double())
    assert math.isclose(float(c[0]), float(big[0, 0]) * math.sqrt(4 * math.pi), rel_tol=1e-12)
    assert float(c[1:].abs().max()) < 1e-12 * float(c[0])
    # a large but representable float32 signal still transforms
    assert bool(torch.isfinite(sht(torch.full((8, 8), 1e37))).all())


def test_check_false_skips_the_finite_test():
    x = torch.full((8, 8), float("nan"))
    assert bool(torch.isnan(sht(x, check=False)).all())


# ----- rotation batches and rotations ------------------------------------------------------------
def test_mismatched_rotation_batch_is_a_shape_error_naming_both_shapes():
    f = isht(_coeffs(4, (3,), seed=1))
    rots = SO3().random(2, seed=2, dtype=F64)
    with pytest.raises(ShapeError) as e:
        rotate(f, rots)
    assert "(2, 3, 3)" in str(e.value) and "(3, 8, 8)" in str(e.value)
    with pytest.raises(ShapeError) as e:
        rotate(sht(f), rots, coeffs=True)
    assert "(2, 3, 3)" in str(e.value) and "(3, 16)" in str(e.value)
    # the suggested fix works: every rotation applied to every signal
    assert rotate(f, rots[:, None]).shape == (2, 3, 8, 8)
    with pytest.raises(ShapeError, match="rotation"):
        rotate(f, torch.eye(4, dtype=F64))


def test_rotate_refuses_non_rotations():
    f = isht(_coeffs(4, (), seed=3))
    with pytest.raises(NotARotationError, match="reflection"):
        rotate(f, torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=F64)))
    with pytest.raises(NotARotationError, match="orthogonal"):
        rotate(f, 2 * torch.eye(3, dtype=F64))
    with pytest.raises(InvalidInputError, match="NaN"):
        rotate(f, torch.full((3, 3), float("nan"), dtype=F64))


def test_float32_rotations_rotate_float64_signals():
    # float32 rotations upcast inside the Wigner code still pass their (float32) check
    f = isht(_coeffs(4, (), seed=4))
    r = SO3().random(1, seed=5, dtype=torch.float32)[0]
    ref = rotate(f, r.double())
    assert torch.allclose(rotate(f, r), ref, atol=1e-12)


# ----- align: results that have no answer say so --------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_align_flags_zero_and_constant_signals(dtype):
    b = 4
    zero = torch.zeros(2, 2 * b, 2 * b, dtype=dtype)
    const = torch.ones(2, 2 * b, 2 * b, dtype=dtype)
    rand = isht(_coeffs(b, (2,), seed=6, dtype=dtype))
    for f, g in ((zero, zero), (const, const), (const, rand), (rand, zero)):
        res = align(f, g)
        assert isinstance(res, AlignResult)
        assert bool(res.ambiguous), (f[0, 0, 0], g[0, 0, 0])
        assert torch.equal(res.rotation, torch.eye(3, dtype=dtype))
        assert float(res.contrast) < 100 * torch.finfo(dtype).eps
    # the constant correlation is the product of the means: ∫ 1 · 1 over two channels = 8π
    assert math.isclose(float(align(const, const).score), 8 * math.pi, rel_tol=1e-5)
    res = align(rand, rand)
    assert not bool(res.ambiguous) and float(res.contrast) > 0.1
    assert float(SO3.geodesic_distance(res.rotation.double(), torch.eye(3, dtype=F64))) < 1e-3


def test_align_result_still_unpacks_as_a_pair_batched_and_pickles():
    b = 4
    f = isht(_coeffs(b, (3, 2), seed=7))
    f[1] = 0.0  # the middle pair has nothing to align
    g = rotate(f, SO3().random(3, seed=8, dtype=F64)[:, None])
    res = align(f, g, refine=False)
    r, score = res
    assert r.shape == (3, 3, 3) and score.shape == (3,)
    assert res.ambiguous.tolist() == [False, True, False]
    assert res.contrast.shape == (3,) and res.contrast.dtype == F64
    assert torch.equal(r[1], torch.eye(3, dtype=F64))
    back = pickle.loads(pickle.dumps(res))
    assert torch.equal(back.rotation, r) and back.ambiguous.tolist() == [False, True, False]
    assert "ambiguous" in repr(res)


def test_align_contrast_is_the_rms_variation_of_the_correlation():
    """``contrast`` against a direct quadrature of ``C`` over the SO(3) grid (Haar measure:
    uniform in α and γ, Driscoll–Healy weights in β, exact for these degrees)."""
    b = 6
    f = isht(_coeffs(b, (2,), seed=9))
    g = isht(_coeffs(b, (2,), seed=10))
    c = so3_correlation(f, g, out_bandwidth=2 * b)  # (2B', 2B', 2B'), B' = 2B: exact for |C|²
    w = Grid(2 * b).weights()
    w = w / (w.sum() * c.shape[0] * c.shape[2])
    mean = (c * w[None, :, None]).sum()
    var = (((c - mean) ** 2) * w[None, :, None]).sum()
    expected = float(var.sqrt()) / float(sht(f).norm() * sht(g).norm())
    got = float(align(f, g, refine=False).contrast)
    assert math.isclose(got, expected, rel_tol=1e-9)


def test_symmetric_signals_are_not_flagged():
    # a signal symmetric about z has a circle of maximisers, but its correlation varies
    c = torch.zeros(1, 16, dtype=F64)
    c[0, 2] = 1.0
    g = isht(c)
    res = align(g, g)
    assert not bool(res.ambiguous) and float(res.contrast) > 0.1
