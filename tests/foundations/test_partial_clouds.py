"""Benchmark inputs: half-space crops and sparse noisy resamplings."""

from __future__ import annotations

import pytest
import torch

from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.geometry import half_space_crop, random_direction, sparse_noisy_resample
from equivision.groups import SO3


def cloud(n: int = 1000) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 4.0


def test_half_space_keeps_the_positive_side_and_follows_a_motion():
    pts = cloud()
    n = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    kept, mask = half_space_crop(pts, n)
    c = pts.mean(0)
    assert torch.equal(mask, (pts[:, 2] - c[2]) >= 0)
    assert torch.equal(kept, pts[mask]) and 350 < len(kept) < 650
    # the same rigid motion of cloud and normal keeps the same points
    r = SO3().random(1, seed=4, dtype=torch.float64)[0]
    _, mask_r = half_space_crop(pts @ r.T + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), n @ r.T)
    assert torch.equal(mask, mask_r)
    # an offset keeps fewer; a seed gives a reproducible random plane, another seed another one
    assert half_space_crop(pts, n, offset=0.5)[1].sum() < mask.sum()
    assert torch.equal(half_space_crop(pts, seed=3)[1], half_space_crop(pts, seed=3)[1])
    assert not torch.equal(half_space_crop(pts, seed=3)[1], half_space_crop(pts, seed=4)[1])
    assert torch.allclose(random_direction(7).norm(), torch.tensor(1.0, dtype=torch.float64))


def test_half_space_bad_input():
    pts = cloud()
    with pytest.raises(InvalidInputError, match="non-zero"):
        half_space_crop(pts, torch.zeros(3))
    with pytest.raises(ShapeError):
        half_space_crop(pts, torch.ones(2))
    with pytest.raises(ShapeError):
        half_space_crop(pts[None])
    with pytest.raises(DegenerateGeometryError):
        half_space_crop(pts, torch.tensor([1.0, 0.0, 0.0]), offset=100.0)
    bad = pts.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InvalidInputError):
        half_space_crop(bad)


def test_sparse_noisy_resample():
    pts = cloud()
    a = sparse_noisy_resample(pts, 300, 0.005, seed=1)
    assert a.shape == (300, 3) and a.dtype == pts.dtype
    assert torch.equal(a, sparse_noisy_resample(pts, 300, 0.005, seed=1))
    assert not torch.equal(a, sparse_noisy_resample(pts, 300, 0.005, seed=2))
    # without noise: distinct points of the cloud; with noise: each within a few σ of one
    exact = sparse_noisy_resample(pts, 300, 0.0, seed=1)
    assert bool((exact[:, None] == pts[None]).all(-1).any(-1).all())
    assert len(torch.unique(exact, dim=0)) == 300
    off = torch.cdist(a, pts).min(-1).values
    assert 0.002 < float(off.mean()) < 0.02
    for bad in ({"n_points": 0}, {"n_points": 5000}, {"sigma": -1.0}):
        with pytest.raises(InvalidInputError):
            sparse_noisy_resample(pts, **{"n_points": 300, "sigma": 0.005, **bad})
