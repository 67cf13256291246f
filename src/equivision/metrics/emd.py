"""Exact earth mover's distance between two equal-size point sets.

With equal counts and uniform weights the optimal transport plan is a permutation (Birkhoff),
so the EMD is an assignment problem, solved exactly by SciPy's Jonker–Volgenant
``linear_sum_assignment`` on the ``(N, N)`` Euclidean cost matrix. The value returned is the
mean matched distance (the per-point EMD that the reconstruction papers report ×100).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.metrics.pointsets import as_points

MAX_EMD_POINTS = 10_000  # the cost matrix is N² float64: 800 MB at 10k points


def earth_movers_distance(
    a: Tensor | np.ndarray, b: Tensor | np.ndarray, *, return_assignment: bool = False
) -> float | tuple[float, np.ndarray]:
    """Mean Euclidean distance of the optimal one-to-one matching of ``a (N, 3)`` with
    ``b (N, 3)``. With ``return_assignment``, also ``perm (N,)`` such that ``a[i]`` is
    matched with ``b[perm[i]]``."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    pa, pb = as_points(a, "a"), as_points(b, "b")
    if len(pa) != len(pb):
        raise ShapeError(f"EMD needs two sets of the same size, got {len(pa)} and {len(pb)}; "
                         "subsample the larger one")
    if len(pa) > MAX_EMD_POINTS:
        raise InvalidInputError(f"EMD on {len(pa)} points needs an {len(pa)}² cost matrix; "
                                f"subsample to at most {MAX_EMD_POINTS} (the protocol uses 2048)")
    cost = cdist(pa, pb)
    rows, cols = linear_sum_assignment(cost)
    value = float(cost[rows, cols].mean())
    if return_assignment:
        perm = np.empty(len(pa), dtype=np.int64)
        perm[rows] = cols
        return value, perm
    return value
