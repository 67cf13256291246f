"""The fast relative pose (Fourier-series evaluation, one joint climb) against the reference
path (the Wigner-d recursion at every step, the best peak refined before the candidates)."""

from __future__ import annotations

import math

import pytest
import torch

import equivision.sphere.pose as pose_mod
from equivision.groups.spatial import SO3
from equivision.sphere import isht, relative_pose, rotate
from equivision.sphere.pose import _relative_pose
from equivision.sphere.so3fft import correlation_at, cross_spectrum
from equivision.sphere.so3series import correlation_series, series_at

_DEFAULTS = dict(out_bandwidth=None, refine=True, separation=math.pi / 6, symmetry_tol=0.05, candidates=3)


def _embedding(seed: int, channels: int, b: int, decay: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(channels, b * b, generator=g, dtype=torch.float64)
    l = torch.arange(b, dtype=torch.float64).repeat_interleave(2 * torch.arange(b) + 1)
    return isht(coeffs / (1 + l) ** decay)


def _assert_same(fast, ref) -> None:
    assert float(SO3.geodesic_distance(fast.rotation, ref.rotation).max()) <= 1e-6
    torch.testing.assert_close(fast.score, ref.score, rtol=1e-5, atol=0)
    torch.testing.assert_close(fast.second_score, ref.second_score, rtol=1e-5, atol=0)
    torch.testing.assert_close(fast.confidence, ref.confidence, rtol=1e-5, atol=1e-9)
    assert torch.equal(fast.symmetric, ref.symmetric) and torch.equal(fast.ambiguous, ref.ambiguous)
    # the second peak's rotation is as well determined as its (flatter) peak allows
    assert float(SO3.geodesic_distance(fast.second_rotation, ref.second_rotation).max()) <= 1e-3


@pytest.mark.parametrize("b, channels", [(4, 2), (8, 6), (16, 4)])
def test_series_equals_the_wigner_recursion(b, channels):
    g = torch.Generator().manual_seed(b)
    f = torch.randn(2, channels, b * b, generator=g, dtype=torch.float64)
    h = cross_spectrum(f, torch.randn(2, channels, b * b, generator=g, dtype=torch.float64))
    r = SO3().random(14, seed=b, dtype=torch.float64).reshape(2, 7, 3, 3)
    r[0, 0] = torch.eye(3, dtype=torch.float64)  # β = 0: the Euler angles are degenerate
    r[1, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))  # β = π
    ref = correlation_at(h, r)
    got = series_at(correlation_series(h), r)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))


@pytest.mark.parametrize("b, channels, decay, seed", [(8, 4, 1.0, 0), (8, 16, 0.0, 1), (16, 8, 1.0, 2)])
def test_fast_path_equals_the_reference_on_random_pairs(b, channels, decay, seed):
    a = _embedding(seed, channels, b, decay)
    r_true = SO3().random(4, seed=seed + 10, dtype=torch.float64)
    pairs = rotate(a, r_true[:, None])
    fast = relative_pose(a, pairs)
    _assert_same(fast, _relative_pose(a, pairs, reference=True, **_DEFAULTS))
    assert float(SO3.geodesic_distance(fast.rotation, r_true).max()) <= 1e-7


def test_fast_path_equals_the_reference_near_a_symmetry():
    # a two-fold symmetric signal plus a small asymmetric part: two near-equal distinct peaks
    a0 = _embedding(4, 4, 8)
    rz = SO3.from_axis_angle(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                             torch.tensor(math.pi, dtype=torch.float64))
    for eps in (0.0, 1e-3, 3e-2):
        a = a0 + rotate(a0, rz) + eps * _embedding(5, 4, 8)
        b = rotate(a, SO3().random(1, seed=6, dtype=torch.float64)[0])
        fast = relative_pose(a, b)
        _assert_same(fast, _relative_pose(a, b, reference=True, **_DEFAULTS))
        if eps == 0.0:
            assert bool(fast.symmetric)


def test_missing_candidates_are_refined_on_their_own(monkeypatch):
    # a smooth signal has no distinct local maximum: the candidates are then the best points
    # at the separation from the refined rotation, not known before it is refined
    calls = []
    refine = pose_mod._refine

    def counting(*args, **kwargs):
        calls.append(args[1].shape[0])
        return refine(*args, **kwargs)

    a = _embedding(2, 32, 16, decay=2.0)
    b = rotate(a, SO3().random(1, seed=7, dtype=torch.float64)[0])
    monkeypatch.setattr(pose_mod, "_refine", counting)
    fast = relative_pose(a, b)
    assert len(calls) == 2  # the joint climb, then the candidates it did not hold
    monkeypatch.setattr(pose_mod, "_refine", refine)
    _assert_same(fast, _relative_pose(a, b, reference=True, **_DEFAULTS))
