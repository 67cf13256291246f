"""K-nearest-neighbour patches of a point cloud around query points.

A patch is the ``K`` input points nearest to a query, ordered by increasing distance. On CPU
the neighbours come from a KD-tree (:class:`scipy.spatial.cKDTree`, with as many threads as
torch uses); on a GPU, or when asked, from chunked ``torch.cdist`` + ``topk``. Both give the
same sets (up to exact distance ties, which any order resolves equally well).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.geometry.unique import unique_rows


def _check_cloud_and_queries(cloud: Tensor, queries: Tensor, k: int) -> None:
    check_points(cloud, "cloud", 3)
    check_points(queries, "queries", 3, min_points=0)
    if cloud.ndim != 2 or queries.ndim != 2:
        raise ShapeError(f"cloud (N, 3) and queries (Q, 3) must be 2-D, got {tuple(cloud.shape)} "
                         f"and {tuple(queries.shape)}")
    if int(k) != k or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k}")
    if cloud.shape[0] < k:
        raise DegenerateGeometryError(
            f"the cloud has {cloud.shape[0]} points, fewer than the patch size K = {k}; "
            "give a denser cloud or a smaller K")


def knn_indices(
    cloud: Tensor, queries: Tensor, k: int, *,
    method: Literal["auto", "kdtree", "torch"] = "auto", chunk_size: int = 4096,
) -> Tensor:
    """Indices ``(Q, k)`` (int64, on the queries' device) of the ``k`` points of
    ``cloud (N, 3)`` nearest to each of ``queries (Q, 3)``, nearest first.

    ``method="auto"`` uses the KD-tree for CPU tensors and ``torch`` on accelerators.
    """
    _check_cloud_and_queries(cloud, queries, k)
    if method == "auto":
        method = "kdtree" if cloud.device.type == "cpu" else "torch"
    if method == "kdtree":
        from scipy.spatial import cKDTree

        c = cloud.detach().cpu().double().numpy()
        q = queries.detach().cpu().double().numpy()
        _, idx = cKDTree(c, balanced_tree=False).query(q, k=int(k), workers=torch.get_num_threads())
        idx = np.asarray(idx, dtype=np.int64).reshape(len(q), int(k))
        return torch.from_numpy(idx).to(queries.device)
    if method != "torch":
        raise InvalidInputError(f"method must be 'auto', 'kdtree' or 'torch', got {method!r}")
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be positive, got {chunk_size}")
    c = cloud.detach().to(queries.device)
    out = []
    for start in range(0, queries.shape[0], chunk_size):
        d = torch.cdist(queries[start : start + chunk_size].detach(), c)
        out.append(d.topk(int(k), dim=1, largest=False, sorted=True).indices)
    if not out:
        return torch.empty(0, int(k), dtype=torch.long, device=queries.device)
    return torch.cat(out)


def gather_patches(cloud: Tensor, indices: Tensor) -> Tensor:
    """The patches ``(Q, K, 3)`` of ``cloud (N, 3)`` selected by ``indices (Q, K)``."""
    if indices.ndim != 2:
        raise ShapeError(f"indices must have shape (Q, K), got {tuple(indices.shape)}")
    return cloud[indices.to(cloud.device)]


def knn_patches(cloud: Tensor, queries: Tensor, k: int, **kwargs) -> tuple[Tensor, Tensor]:
    """``(patches (Q, k, 3), indices (Q, k))``: the ``k`` nearest cloud points of each query."""
    idx = knn_indices(cloud, queries, k, **kwargs)
    return gather_patches(cloud, idx), idx


def remove_duplicate_points(points: Tensor, tol: float = 0.0) -> tuple[Tensor, Tensor]:
    """Drop repeated points: exact copies (``tol=0``) or points within ``tol`` of a point
    kept before them. Returns ``(kept (M, 3), kept_indices (M,))`` in the original order.

    Repeated points make patches degenerate (a patch of K copies has no orientation, see
    :mod:`equivision.recon.frames`); reconstruction removes them first.
    """
    check_points(points, "points", 3)
    if points.ndim != 2:
        raise ShapeError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if not tol >= 0:
        raise InvalidInputError(f"tol must be >= 0, got {tol}")
    p = points.detach().cpu().double().numpy()
    if tol == 0:
        _, first, _ = unique_rows(p)
        keep = np.sort(first)
    else:
        from scipy.spatial import cKDTree

        pairs = cKDTree(p).query_pairs(r=float(tol), output_type="ndarray")
        drop = np.zeros(len(p), dtype=bool)
        # greedy in index order: a point is dropped if an earlier *kept* point is within tol
        if len(pairs):
            pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
            neighbours: dict[int, list[int]] = {}
            for i, j in pairs:
                neighbours.setdefault(int(j), []).append(int(i))
            for j in sorted(neighbours):
                if any(not drop[i] for i in neighbours[j]):
                    drop[j] = True
        keep = np.flatnonzero(~drop)
    idx = torch.from_numpy(keep.astype(np.int64)).to(points.device)
    return points[idx], idx
