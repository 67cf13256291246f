"""Point-set metrics against brute-force NumPy, EMD against POT and exhaustive search, for
tensors of each device and float dtype (the metrics compute in float64 on the CPU whatever
the input, so the oracle on the same, possibly float32-rounded, coordinates agrees to 1e-12)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from _devices import tol
from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.metrics import (
    chamfer_distance,
    earth_movers_distance,
    fscore,
    nearest_neighbors,
    normal_consistency,
    point_set_metrics,
)


def _brute(a, b, na, nb, t):
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)  # (N, M)
    d_ab, d_ba = d.min(1), d.min(0)
    cd1 = (d_ab.mean() + d_ba.mean()) / 2
    cd2 = ((d_ab**2).mean() + (d_ba**2).mean()) / 2
    p, r = (d_ab < t).mean(), (d_ba < t).mean()
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    na = na / np.linalg.norm(na, axis=1, keepdims=True)
    nb = nb / np.linalg.norm(nb, axis=1, keepdims=True)
    nc = (np.abs((na * nb[d.argmin(1)]).sum(1)).mean() + np.abs((nb * na[d.argmin(0)]).sum(1)).mean()) / 2
    return cd1, cd2, f, nc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_set_metrics_match_brute_force(seed, device, dtype):
    rng = np.random.default_rng(seed)
    a64, b64 = rng.random((300, 3)), rng.random((217, 3)) * 1.1
    na64, nb64 = rng.normal(size=(300, 3)), rng.normal(size=(217, 3))
    ta, tb, tna, tnb = (torch.from_numpy(x).to(device, dtype) for x in (a64, b64, na64, nb64))
    # the oracle sees exactly the coordinates the metrics get (float32 inputs are rounded)
    a, b, na, nb = (x.cpu().double().numpy() for x in (ta, tb, tna, tnb))
    t = 0.05
    m = point_set_metrics(ta, b, pred_normals=tna, reference_normals=tnb, thresholds=(t, 0.1))
    cd1, cd2, f, nc = _brute(a, b, na, nb, t)
    assert m.chamfer_l1 == pytest.approx(cd1, rel=1e-12)
    assert m.chamfer_l2 == pytest.approx(cd2, rel=1e-12)
    assert m.fscore[t] == pytest.approx(f, abs=1e-12)
    assert m.normal_consistency == pytest.approx(nc, rel=1e-12)
    assert chamfer_distance(ta, tb) == pytest.approx(cd1, rel=1e-12)
    assert chamfer_distance(ta, tb, squared=True) == pytest.approx(cd2, rel=1e-12)
    assert fscore(ta, tb, t) == pytest.approx(f, abs=1e-12)
    assert normal_consistency(ta, tna, tb, tnb) == pytest.approx(nc, rel=1e-12)
    # against the float64 originals: float64 inputs lose nothing; float32 rounding of the
    # coordinates (measured over the three seeds: at most 4.6e-8 relative on CD-L1/L2 and NC) stays below 1e-6
    cd1_64, cd2_64, _, nc_64 = _brute(a64, b64, na64, nb64, t)
    bound = tol(dtype, f32=1e-6, f64=1e-14)
    assert m.chamfer_l1 == pytest.approx(cd1_64, rel=bound)
    assert m.chamfer_l2 == pytest.approx(cd2_64, rel=bound)
    assert m.normal_consistency == pytest.approx(nc_64, rel=bound)


def test_nearest_neighbors_against_scipy_cdist(device, dtype):
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(3)
    ta, tb = (torch.from_numpy(rng.normal(size=(n, 3))).to(device, dtype) for n in (100, 150))
    a, b = ta.cpu().double().numpy(), tb.cpu().double().numpy()
    d, i = nearest_neighbors(ta, tb)
    assert d.dtype == np.float64 and i.dtype.kind == "i"
    full = cdist(a, b)
    np.testing.assert_allclose(d, full.min(1), rtol=1e-12)
    np.testing.assert_array_equal(i, full.argmin(1))


def test_identical_sets_and_known_offset():
    rng = np.random.default_rng(4)
    a = rng.random((500, 3))
    m = point_set_metrics(a, a, pred_normals=a + 1, reference_normals=a + 1)
    assert m.chamfer_l1 == 0 and m.chamfer_l2 == 0 and m.normal_consistency == pytest.approx(1)
    assert all(v == 1 for v in m.fscore.values())
    # a single point against a single point: every metric is analytic
    m = point_set_metrics([[0, 0, 0]], [[0.003, 0.004, 0]], thresholds=(0.01, 0.005, 0.004))
    assert m.chamfer_l1 == pytest.approx(0.005) and m.chamfer_l2 == pytest.approx(0.005**2)
    assert m.fscore == {0.01: 1.0, 0.005: 0.0, 0.004: 0.0}  # strict '<' at the threshold
    assert m.normal_consistency is None


def test_normal_sign_is_ignored():
    rng = np.random.default_rng(5)
    a = rng.random((200, 3))
    n = rng.normal(size=(200, 3))
    flip = np.where(rng.random(200) < 0.5, -1.0, 1.0)[:, None]
    assert normal_consistency(a, n, a, n * flip) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [16, 100])
def test_emd_matches_pot(n):
    import ot

    rng = np.random.default_rng(n)
    a, b = rng.random((n, 3)), rng.normal(size=(n, 3))
    cost = ot.dist(a, b, metric="euclidean")
    w = np.full(n, 1.0 / n)
    assert earth_movers_distance(a, b) == pytest.approx(ot.emd2(w, w, cost), rel=1e-9)


def test_emd_matches_exhaustive_search_and_returns_the_matching(device, dtype):
    rng = np.random.default_rng(6)
    ta, tb = (torch.from_numpy(rng.random((6, 3))).to(device, dtype) for _ in range(2))
    a, b = ta.cpu().double().numpy(), tb.cpu().double().numpy()  # what the EMD sees
    best = min(np.linalg.norm(a - b[list(p)], axis=1).mean() for p in itertools.permutations(range(6)))
    value, perm = earth_movers_distance(ta, tb, return_assignment=True)
    assert value == pytest.approx(best, rel=1e-12)
    assert np.linalg.norm(a - b[perm], axis=1).mean() == pytest.approx(value, rel=1e-12)
    # a permuted copy is matched exactly; a translated copy costs the translation
    assert earth_movers_distance(a, a[::-1]) == pytest.approx(0.0, abs=1e-15)
    assert earth_movers_distance(a, a + np.array([0.0, 0.0, 0.01])) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("a", "b", "err"),
    [
        (np.zeros((5, 2)), np.zeros((5, 3)), ShapeError),
        (np.zeros((0, 3)), np.zeros((5, 3)), DegenerateGeometryError),
        (np.array([[0, 0, np.nan]]), np.zeros((5, 3)), InvalidInputError),
        (np.array([[0, 0, np.inf]]), np.zeros((5, 3)), InvalidInputError),
        ("not points", np.zeros((5, 3)), InvalidInputError),
    ],
)
def test_bad_point_sets(a, b, err):
    with pytest.raises(err):
        chamfer_distance(a, b)
    with pytest.raises(err):
        point_set_metrics(a, b)


def test_bad_arguments():
    a = np.random.default_rng(0).random((10, 3))
    with pytest.raises(InvalidInputError, match="threshold"):
        point_set_metrics(a, a, thresholds=(0.0,))
    with pytest.raises(InvalidInputError, match="threshold"):
        fscore(a, a, threshold=float("nan"))
    with pytest.raises(InvalidInputError, match="zero-length"):
        normal_consistency(a, np.zeros((10, 3)), a, a)
    with pytest.raises(ShapeError, match="normals"):
        normal_consistency(a, a[:5], a, a)
    with pytest.raises(ShapeError, match="same size"):
        earth_movers_distance(a, a[:9])
    big = np.zeros((10_001, 3))
    with pytest.raises(InvalidInputError, match="subsample"):
        earth_movers_distance(big, big)
