"""Rotation error metrics against SciPy's ``Rotation``: the geodesic angle, the half-turn
symmetry forms, the median and Acc@15/Acc@30."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from equivision.errors import InvalidInputError, NotARotationError, ShapeError
from equivision.metrics import rotation_error_summary, rotation_errors


def _pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gt = Rotation.random(n, random_state=seed)
    # perturbations of all sizes up to π, so both ends of the angle range are exercised
    rng = np.random.default_rng(seed + 1)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, math.pi, size=n)
    angles[:3] = [1e-7, math.pi - 1e-7, 0.0]
    est = gt * Rotation.from_rotvec(axes * angles[:, None])
    return torch.from_numpy(est.as_matrix()), torch.from_numpy(gt.as_matrix())


def test_errors_match_scipy_magnitude():
    est, gt = _pairs(200, 0)
    ref = (Rotation.from_matrix(gt.numpy()).inv() * Rotation.from_matrix(est.numpy())).magnitude()
    err = rotation_errors(est, gt)
    assert err.shape == (200,)
    np.testing.assert_allclose(err.numpy(), ref, atol=1e-9)
    np.testing.assert_allclose(rotation_errors(gt, est).numpy(), ref, atol=1e-9)  # symmetric
    assert float(rotation_errors(gt, gt).abs().max()) < 1e-12


def test_symmetry_axis_takes_the_nearer_of_the_two_answers():
    est, gt = _pairs(100, 2)
    axis = np.array([0.3, -1.0, 2.0])
    s = Rotation.from_rotvec(math.pi * axis / np.linalg.norm(axis))
    g, e = Rotation.from_matrix(gt.numpy()), Rotation.from_matrix(est.numpy())
    ref = np.minimum((g.inv() * e).magnitude(), ((g * s).inv() * e).magnitude())
    err = rotation_errors(est, gt, symmetry_axis=torch.tensor(axis))
    np.testing.assert_allclose(err.numpy(), ref, atol=1e-9)
    # an estimate off by exactly the half turn has zero error with the axis, π without
    flipped = torch.from_numpy((g * s).as_matrix())
    assert float(rotation_errors(flipped, gt, symmetry_axis=torch.tensor(axis)).max()) < 1e-7
    assert float(rotation_errors(flipped, gt).min()) > math.pi - 1e-7
    # the axis-free fold min(e, π − e) never exceeds the axis form
    folded = rotation_errors(est, gt, fold=True)
    plain = (g.inv() * e).magnitude()
    np.testing.assert_allclose(folded.numpy(), np.minimum(plain, math.pi - plain), atol=1e-9)
    assert bool((folded <= err + 1e-9).all())


def test_summary_median_and_accuracies():
    est, gt = _pairs(101, 4)
    ref = np.degrees((Rotation.from_matrix(gt.numpy()).inv() * Rotation.from_matrix(est.numpy())).magnitude())
    summ = rotation_error_summary(est, gt)
    assert summ.n == 101
    assert summ.median_deg == pytest.approx(float(np.median(ref)), abs=1e-7)
    assert summ.accuracy[15.0] == pytest.approx(float((ref < 15).mean()))
    assert summ.accuracy[30.0] == pytest.approx(float((ref < 30).mean()))
    assert 0 < summ.accuracy[15.0] < summ.accuracy[30.0] < 1
    even = rotation_error_summary(est[:100], gt[:100])
    assert even.median_deg == pytest.approx(float(np.median(ref[:100])), abs=1e-7)


def test_bad_input():
    est, gt = _pairs(4, 6)
    with pytest.raises(ShapeError):
        rotation_errors(est[:, :2], gt)
    with pytest.raises(ShapeError):
        rotation_errors(est[:3], gt)
    with pytest.raises(NotARotationError):
        rotation_errors(2 * est, gt)
    with pytest.raises(InvalidInputError):
        rotation_errors(est, gt, symmetry_axis=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(InvalidInputError):
        rotation_errors(est, gt, symmetry_axis=torch.ones(3), fold=True)
    with pytest.raises(InvalidInputError):
        rotation_error_summary(est[:0], gt[:0])
