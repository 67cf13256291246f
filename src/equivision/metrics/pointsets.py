"""Distances between two point sets: Chamfer-L1/-L2, F-score, normal consistency.

All of them rest on nearest-neighbour distances in both directions, found with a KD-tree
(:class:`scipy.spatial.cKDTree`, all cores), so 100k points against 100k take a fraction of a
second. Inputs are ``(N, 3)`` tensors or arrays; results are Python floats in the units of the
points (the reconstruction protocol in :mod:`equivision.metrics.protocol` scales them).

Definitions (``A`` = prediction, ``B`` = reference, ``d(x, S)`` = distance to the nearest
point of ``S``):

* Chamfer-L1 = ½ (mean_a d(a, B) + mean_b d(b, A))          (the mean of the two directions)
* Chamfer-L2 = ½ (mean_a d(a, B)² + mean_b d(b, A)²)
* F-score(τ) = 2 P R / (P + R), precision P = fraction of a with d(a, B) < τ, recall
  R = fraction of b with d(b, A) < τ (0 when both are 0)
* normal consistency = ½ (mean_a |⟨n_a, n_nn(a)⟩| + mean_b |⟨n_b, n_nn(b)⟩|) with unit normals:
  the sign of a normal is ignored, since reconstructions from unoriented clouds may flip it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError


def as_points(x: Tensor | np.ndarray, name: str) -> np.ndarray:
    """``(N, 3)`` float64 NumPy array from a tensor or array; typed errors for bad input."""
    if isinstance(x, Tensor):
        arr = x.detach().cpu().double().numpy()
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"{name} must be an (N, 3) array of numbers ({e})") from e
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ShapeError(f"{name} must have shape (N, 3), got {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise DegenerateGeometryError(f"{name} is empty: at least one point is needed")
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).any(1).sum())
        raise InvalidInputError(f"{name} has {n_bad} points with NaN or infinite coordinates")
    return arr


def _unit_normals(n: Tensor | np.ndarray, count: int, name: str) -> np.ndarray:
    arr = as_points(n, name)
    if arr.shape[0] != count:
        raise ShapeError(f"{name} has {arr.shape[0]} normals for {count} points")
    length = np.linalg.norm(arr, axis=1)
    if (length <= 0).any():
        raise InvalidInputError(f"{name} has {int((length <= 0).sum())} zero-length normals; "
                                "drop those points or recompute the normals")
    return arr / length[:, None]


def nearest_neighbors(src: Tensor | np.ndarray, dst: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every point of ``src (N, 3)``, the distance to and the index of its nearest point
    in ``dst (M, 3)``: ``(distances (N,), indices (N,))``."""
    from scipy.spatial import cKDTree

    a, b = as_points(src, "src"), as_points(dst, "dst")
    dist, idx = cKDTree(b, balanced_tree=False).query(a, k=1, workers=-1)
    return dist, idx


def check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    """F-score thresholds as floats; InvalidInputError unless a non-empty list of finite positive numbers."""
    ts = tuple(float(t) for t in thresholds)
    if not ts or not all(np.isfinite(t) and t > 0 for t in ts):
        raise InvalidInputError(f"F-score thresholds must be positive numbers, got {list(thresholds)}")
    return ts


def fscore_from_distances(d_ab: np.ndarray, d_ba: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """``(F-score, precision, recall)`` at ``threshold`` from the two directed NN distances."""
    precision = float(np.mean(d_ab < threshold))
    recall = float(np.mean(d_ba < threshold))
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f, precision, recall


@dataclass(frozen=True)
class PointSetMetrics:
    """Raw (unscaled) metrics between a predicted and a reference point set."""

    chamfer_l1: float
    chamfer_l2: float
    fscore: dict[float, float]
    precision: dict[float, float]
    recall: dict[float, float]
    normal_consistency: float | None  # None when either set has no normals


def point_set_metrics(
    pred: Tensor | np.ndarray,
    reference: Tensor | np.ndarray,
    *,
    pred_normals: Tensor | np.ndarray | None = None,
    reference_normals: Tensor | np.ndarray | None = None,
    thresholds: Sequence[float] = (0.01, 0.005),
) -> PointSetMetrics:
    """Chamfer-L1/-L2, F-score at each threshold and (with both normals) normal consistency
    between ``pred (N, 3)`` and ``reference (M, 3)``, from one KD-tree query each way."""
    from scipy.spatial import cKDTree

    a, b = as_points(pred, "pred"), as_points(reference, "reference")
    ts = check_thresholds(thresholds)
    d_ab, i_ab = cKDTree(b, balanced_tree=False).query(a, k=1, workers=-1)
    d_ba, i_ba = cKDTree(a, balanced_tree=False).query(b, k=1, workers=-1)
    cd1 = 0.5 * (float(d_ab.mean()) + float(d_ba.mean()))
    cd2 = 0.5 * (float(np.mean(d_ab**2)) + float(np.mean(d_ba**2)))
    fs, ps, rs = {}, {}, {}
    for t in ts:
        fs[t], ps[t], rs[t] = fscore_from_distances(d_ab, d_ba, t)
    nc = None
    if pred_normals is not None and reference_normals is not None:
        na = _unit_normals(pred_normals, len(a), "pred_normals")
        nb = _unit_normals(reference_normals, len(b), "reference_normals")
        c_ab = np.abs(np.einsum("ij,ij->i", na, nb[i_ab])).mean()
        c_ba = np.abs(np.einsum("ij,ij->i", nb, na[i_ba])).mean()
        nc = 0.5 * (float(c_ab) + float(c_ba))
    return PointSetMetrics(cd1, cd2, fs, ps, rs, nc)


def chamfer_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray, *, squared: bool = False) -> float:
    """Chamfer distance between ``a (N, 3)`` and ``b (M, 3)``: the mean of the two directed
    mean NN distances (``squared=True``: of squared distances, i.e. Chamfer-L2)."""
    d_ab, _ = nearest_neighbors(a, b)
    d_ba, _ = nearest_neighbors(b, a)
    if squared:
        return 0.5 * (float(np.mean(d_ab**2)) + float(np.mean(d_ba**2)))
    return 0.5 * (float(d_ab.mean()) + float(d_ba.mean()))


def fscore(pred: Tensor | np.ndarray, reference: Tensor | np.ndarray, threshold: float = 0.01) -> float:
    """F-score at ``threshold`` (harmonic mean of precision and recall, see module doc)."""
    (t,) = check_thresholds([threshold])
    d_ab, _ = nearest_neighbors(pred, reference)
    d_ba, _ = nearest_neighbors(reference, pred)
    return fscore_from_distances(d_ab, d_ba, t)[0]


def normal_consistency(
    pred: Tensor | np.ndarray, pred_normals: Tensor | np.ndarray,
    reference: Tensor | np.ndarray, reference_normals: Tensor | np.ndarray,
) -> float:
    """Normal consistency in [0, 1] (1 = every normal parallel to its nearest neighbour's)."""
    m = point_set_metrics(pred, reference, pred_normals=pred_normals,
                          reference_normals=reference_normals, thresholds=(1.0,))
    assert m.normal_consistency is not None
    return m.normal_consistency
