"""Rotation error metrics against SciPy's ``Rotation``: the geodesic angle, the half-turn
symmetry forms, the median and Acc@15/Acc@30, on each device in float32 and float64 (the
errors come back in the rotations' dtype and device). The float64 bounds are the ones the tests
were written with; the float32 ones are the measured worst error of the rounded matrices
against SciPy on the float64 originals, with margin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from _devices import tol
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


# radians; float32 measured: 2.1e-7 (plain), 5.4e-7 (with the symmetry axis)
def angle_tol(dtype: torch.dtype) -> float:
    return tol(dtype, f32=2e-6, f64=1e-9)


def test_errors_match_scipy_magnitude(device, dtype):
    est64, gt64 = _pairs(200, 0)
    ref = (Rotation.from_matrix(gt64.numpy()).inv() * Rotation.from_matrix(est64.numpy())).magnitude()
    est, gt = est64.to(device, dtype), gt64.to(device, dtype)
    err = rotation_errors(est, gt)
    assert err.shape == (200,) and err.dtype == dtype and err.device.type == device
    np.testing.assert_allclose(err.cpu().double().numpy(), ref, atol=angle_tol(dtype))
    np.testing.assert_allclose(rotation_errors(gt, est).cpu().double().numpy(), ref,
                               atol=angle_tol(dtype))  # symmetric
    assert float(rotation_errors(gt, gt).abs().max()) < 1e-12  # measured 0 in both dtypes
    # mixed dtypes promote: a float64 truth keeps the float64 result
    assert rotation_errors(est, gt64.to(device)).dtype == torch.float64


def test_symmetry_axis_takes_the_nearer_of_the_two_answers(device, dtype):
    est64, gt64 = _pairs(100, 2)
    axis = np.array([0.3, -1.0, 2.0])
    s = Rotation.from_rotvec(math.pi * axis / np.linalg.norm(axis))
    g, e = Rotation.from_matrix(gt64.numpy()), Rotation.from_matrix(est64.numpy())
    ref = np.minimum((g.inv() * e).magnitude(), ((g * s).inv() * e).magnitude())
    est, gt = est64.to(device, dtype), gt64.to(device, dtype)
    # the axis as a float64 CPU tensor: cast to the rotations' dtype and device
    err = rotation_errors(est, gt, symmetry_axis=torch.tensor(axis))
    assert err.dtype == dtype and err.device.type == device
    np.testing.assert_allclose(err.cpu().double().numpy(), ref, atol=angle_tol(dtype))
    # an estimate off by exactly the half turn has zero error with the axis, π without
    # (float32 measured: 4.0e-7 and π − 1.5e-7)
    flipped = torch.from_numpy((g * s).as_matrix()).to(device, dtype)
    near = tol(dtype, f32=2e-6, f64=1e-7)
    assert float(rotation_errors(flipped, gt, symmetry_axis=torch.tensor(axis)).max()) < near
    assert float(rotation_errors(flipped, gt).min()) > math.pi - near
    # the axis-free fold min(e, π − e) never exceeds the axis form
    folded = rotation_errors(est, gt, fold=True)
    plain = (g.inv() * e).magnitude()
    np.testing.assert_allclose(folded.cpu().double().numpy(), np.minimum(plain, math.pi - plain),
                               atol=angle_tol(dtype))
    assert bool((folded <= err + angle_tol(dtype)).all())


def test_summary_median_and_accuracies(device, dtype):
    est, gt = _pairs(101, 4)
    ref = np.degrees((Rotation.from_matrix(gt.numpy()).inv() * Rotation.from_matrix(est.numpy())).magnitude())
    est, gt = est.to(device, dtype), gt.to(device, dtype)
    summ = rotation_error_summary(est, gt)
    assert summ.n == 101
    deg = tol(dtype, f32=2e-5, f64=1e-7)  # float32 measured: 4.1e-6 degrees
    assert summ.median_deg == pytest.approx(float(np.median(ref)), abs=deg)
    assert summ.accuracy[15.0] == pytest.approx(float((ref < 15).mean()))
    assert summ.accuracy[30.0] == pytest.approx(float((ref < 30).mean()))
    assert 0 < summ.accuracy[15.0] < summ.accuracy[30.0] < 1
    even = rotation_error_summary(est[:100], gt[:100])
    assert even.median_deg == pytest.approx(float(np.median(ref[:100])), abs=deg)


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
    # rotations on two devices (a data-less "meta" tensor stands in for an accelerator)
    with pytest.raises(InvalidInputError, match="device"):
        rotation_errors(est, gt.to("meta"))
