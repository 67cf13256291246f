"""The antipodal map and the odd part of grid signals: exact on the Driscoll–Healy grid, the
odd-degree harmonics of the signal (SHT oracle), and rotation-equivariant (the harness)."""

from __future__ import annotations

import pytest
import torch

from equivision.errors import ShapeError
from equivision.groups.spatial import SO3
from equivision.sphere.grid import antipodal, odd_part
from equivision.sphere.rotate import rotate
from equivision.sphere.sht import isht, sht
from equivision.testing import assert_equivariant

F64 = torch.float64


def _signal(b: int, lead: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return isht(torch.randn(*lead, b * b, generator=g, dtype=F64))


def test_odd_part_is_the_odd_degree_harmonics() -> None:
    b = 8
    f = _signal(b, (3,), seed=1)
    c = sht(f)
    degree = torch.cat([torch.full((2 * l + 1,), l) for l in range(b)])
    want = isht(c * (degree % 2 == 1).to(F64))
    assert (odd_part(f) - want).abs().max() < 1e-12
    assert (f - odd_part(f) - isht(c * (degree % 2 == 0).to(F64))).abs().max() < 1e-12


def test_antipodal_samples_the_point_reflection() -> None:
    b = 6
    f = _signal(b, (), seed=2)
    # f(−x) for f = Σ c_lm Y_lm is Σ (−1)^l c_lm Y_lm
    degree = torch.cat([torch.full((2 * l + 1,), l) for l in range(b)])
    want = isht(sht(f) * (-1.0) ** degree.to(F64))
    assert (antipodal(f) - want).abs().max() < 1e-12
    assert torch.equal(antipodal(antipodal(f)), f)


def test_odd_part_commutes_with_rotations() -> None:
    f = _signal(8, (2,), seed=3)
    rots = SO3().random(4, seed=5, dtype=F64)

    def act(r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rotate(x, r.to(x.dtype))

    assert assert_equivariant(odd_part, f, act, act, rots, tol=1e-12) < 1e-12
    assert assert_equivariant(odd_part, f.float(), act, act, rots, tol=1e-5) < 1e-5


def test_odd_part_refuses_a_non_grid() -> None:
    with pytest.raises(ShapeError, match="square"):
        odd_part(torch.zeros(4, 6))
