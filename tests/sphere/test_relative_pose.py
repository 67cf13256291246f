"""Relative pose by SO(3) cross-correlation: the convention (a's pose onto b's), precision after
refinement, the second distinct peak and symmetry flag, and the brute-force anchor."""

from __future__ import annotations

import math

import pytest
import torch

from equivision.errors import InvalidInputError, ShapeError
from equivision.groups.spatial import SO3
from equivision.sphere import brute_force_pose, isht, relative_pose, rotate, so3_grid_rotations

B, C = 8, 4


def _embedding(seed: int, channels: int = C, b: int = B) -> torch.Tensor:
    """A band-limited random embedding ``(C, 2B, 2B)`` (float64), its spectrum decaying with l
    like smooth feature maps do."""
    g = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(channels, b * b, generator=g, dtype=torch.float64)
    l = torch.arange(b, dtype=torch.float64).repeat_interleave(2 * torch.arange(b) + 1)
    return isht(coeffs / (1 + l))


def _rz_pi() -> torch.Tensor:
    return SO3.from_axis_angle(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                               torch.tensor(math.pi, dtype=torch.float64))


def test_returns_the_rotation_from_a_pose_to_b_pose_to_1e5_rad():
    a = _embedding(0)
    r_true = SO3().random(4, seed=1, dtype=torch.float64)
    b = rotate(a, r_true[:, None])  # b shows the object rotated by R: b = R·a
    res = relative_pose(a, b)
    assert res.rotation.shape == (4, 3, 3) and res.score.shape == (4,)
    err = SO3.geodesic_distance(res.rotation, r_true)
    assert float(err.max()) <= 1e-5
    # the transpose would be the other convention: it is far from the answer for these rotations
    assert float(SO3.geodesic_distance(res.rotation, r_true.transpose(-1, -2)).min()) > 0.1
    assert not bool(res.symmetric.any()) and not bool(res.ambiguous.any())
    assert float(res.confidence.min()) > 0.2
    # the second peak is distinct: at least the default 30° away
    assert float(SO3.geodesic_distance(res.second_rotation, res.rotation).min()) >= math.pi / 6 - 1e-9
    assert bool((res.second_score < res.score).all())


def test_confidence_ignores_constant_offsets():
    # adding a constant to every channel shifts C(R) by the same amount for every R: the
    # confidence, measured from the mean of C, must not move (and the rotation neither)
    a = _embedding(13)
    r_true = SO3().random(1, seed=14, dtype=torch.float64)[0]
    b = rotate(a, r_true)
    plain = relative_pose(a, b)
    shifted = relative_pose(a + 3.0, b + 3.0)
    assert float(shifted.confidence) == pytest.approx(float(plain.confidence), abs=1e-9)
    assert float(SO3.geodesic_distance(shifted.rotation, r_true)) <= 1e-5


def test_upsampled_grid_and_no_refinement():
    a = _embedding(2)
    r_true = SO3().random(1, seed=3, dtype=torch.float64)[0]
    b = rotate(a, r_true)
    coarse = relative_pose(a, b, refine=False)
    fine = relative_pose(a, b, refine=False, out_bandwidth=4 * B)
    e_coarse = float(SO3.geodesic_distance(coarse.rotation, r_true))
    e_fine = float(SO3.geodesic_distance(fine.rotation, r_true))
    # a grid point is within the grid's covering radius of the truth; the finer grid is closer
    assert e_coarse <= math.sqrt(3) * math.pi / B
    assert e_fine <= math.sqrt(3) * math.pi / (4 * B)
    refined = relative_pose(a, b, out_bandwidth=2 * B)
    assert float(SO3.geodesic_distance(refined.rotation, r_true)) <= 1e-5


def test_two_fold_symmetric_signal_sets_the_flag_and_finds_both_peaks():
    a0 = _embedding(4)
    rz = _rz_pi()
    a = a0 + rotate(a0, rz)  # invariant under the half turn about z
    r_true = SO3().random(1, seed=5, dtype=torch.float64)[0]
    b = rotate(a, r_true)
    res = relative_pose(a, b)
    assert bool(res.symmetric) and float(res.confidence) < 1e-6
    both = torch.stack([r_true, r_true @ rz])
    found = torch.stack([res.rotation, res.second_rotation])
    d = SO3.geodesic_distance(found[:, None], both[None])  # (2 found, 2 true)
    assert float(d.min(dim=1).values.max()) <= 1e-5  # each found peak is a true one
    assert float(d.min(dim=0).values.max()) <= 1e-5  # and each true one is found
    # the unsymmetrised signal is not flagged
    assert not bool(relative_pose(a0, rotate(a0, r_true)).symmetric)


def test_a_higher_peak_found_by_refining_a_candidate_is_the_answer():
    # Nearly two-fold symmetric: the half turn about z almost maps the signal onto itself, so
    # C has two near-equal peaks, at R and at R·Rz(π); the true one (C(R) = ‖a‖²) is higher by
    # O(ε²) (ε = 0.01). The coarse grid's best point often lies on the lower peak; the refined candidates
    # include the higher one, and the answer must be the maximum of what was refined.
    a0, t = _embedding(21), _embedding(22)
    a = a0 + rotate(a0, _rz_pi()) + 0.01 * t
    r_true = SO3().random(24, seed=23, dtype=torch.float64)
    b = rotate(a, r_true[:, None])
    res = relative_pose(a, b)
    grid = relative_pose(a, b, refine=False)
    wrong_grid_peak = SO3.geodesic_distance(grid.rotation, r_true) > math.pi / 2
    assert int(wrong_grid_peak.sum()) >= 3  # the case this test is about does occur
    assert bool((res.score >= res.second_score).all())
    assert float(SO3.geodesic_distance(res.rotation, r_true).max()) <= 1e-5
    # the other peak is the second one, about a half turn away
    assert float(SO3.geodesic_distance(res.second_rotation, r_true @ _rz_pi()).max()) <= 1e-2


def test_fft_grid_argmax_is_the_brute_force_argmax():
    a = _embedding(6, channels=2, b=4)
    r_true = SO3().random(1, seed=7, dtype=torch.float64)[0]
    b = rotate(a, r_true)
    grid = so3_grid_rotations(4).reshape(-1, 3, 3)
    r_bf, s_bf = brute_force_pose(a, b, grid)
    fft = relative_pose(a, b, refine=False)
    assert float(SO3.geodesic_distance(fft.rotation, r_bf)) < 1e-9
    assert abs(float(fft.score) - float(s_bf)) < 1e-9 * max(1.0, abs(float(s_bf)))
    assert float(SO3.geodesic_distance(r_bf, r_true)) <= math.sqrt(3) * math.pi / 4


def test_batched_pairs_broadcast_and_float32():
    a = _embedding(8).float()
    r_true = SO3().random(3, seed=9, dtype=torch.float64)
    b = rotate(a.double(), r_true[:, None]).float()
    res = relative_pose(a, b)  # a (C, 2B, 2B) broadcasts against b (3, C, 2B, 2B)
    assert res.rotation.dtype == torch.float32 and res.rotation.shape == (3, 3, 3)
    assert float(SO3.geodesic_distance(res.rotation.double(), r_true).max()) < 1e-3


def test_zero_embedding_is_ambiguous():
    z = torch.zeros(C, 2 * B, 2 * B, dtype=torch.float64)
    res = relative_pose(z, _embedding(10))
    assert bool(res.ambiguous) and float(res.confidence) == 0.0
    assert torch.equal(res.rotation, torch.eye(3, dtype=torch.float64))


def test_bad_input_raises_typed_errors():
    a = _embedding(11)
    with pytest.raises(ShapeError):
        relative_pose(a, a[:2])  # channel counts differ
    with pytest.raises(ShapeError):
        relative_pose(a, _embedding(12, b=4))  # bandwidths differ
    with pytest.raises(ShapeError):
        relative_pose(a[0], a[0])  # no channel axis
    with pytest.raises(InvalidInputError):
        relative_pose(a, a.float())
    with pytest.raises(InvalidInputError):
        relative_pose(a, a, separation=0.0)
    with pytest.raises(InvalidInputError):
        relative_pose(a, a, out_bandwidth=B - 1)
    with pytest.raises(InvalidInputError):
        relative_pose(a, a.clone().fill_(float("nan")))
    with pytest.raises(ShapeError):
        brute_force_pose(a, a, torch.zeros(0, 3, 3, dtype=torch.float64))


def test_ray_cast_mesh_rotated_by_r_gives_r():
    # the convention on real geometry: the embedding of R·mesh against that of the mesh is R
    trimesh = pytest.importorskip("trimesh")
    from equivision.io import Mesh
    from equivision.render.sphere import raycast_sphere

    box = trimesh.creation.box(extents=[1.0, 0.5, 0.3])
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.25)
    ball.apply_translation([0.5, 0.2, 0.1])
    rod = trimesh.creation.cylinder(radius=0.1, height=0.6)
    rod.apply_translation([-0.3, -0.1, 0.3])
    tm = trimesh.util.concatenate([box, ball, rod])
    mesh = Mesh(torch.tensor(tm.vertices), torch.tensor(tm.faces))
    r_true = SO3().random(3, seed=0, dtype=torch.float64)
    a = raycast_sphere(mesh, 16, dtype=torch.float64)
    b = raycast_sphere(mesh, 16, rotations=r_true, dtype=torch.float64)
    res = relative_pose(a, b)
    err = SO3.geodesic_distance(res.rotation, r_true)
    assert float(err.max()) < math.radians(2)  # measured 0.3–0.4°: ray-casting is not exactly equivariant
    assert float(SO3.geodesic_distance(res.rotation, r_true.transpose(-1, -2)).min()) > math.radians(20)
    # the box's near half-turn symmetries give a second peak, but a clearly lower one (measured 0.22–0.24)
    assert not bool(res.symmetric.any()) and float(res.confidence.min()) > 0.1
