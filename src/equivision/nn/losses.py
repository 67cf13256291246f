"""Losses between spherical maps on the Driscoll–Healy grid.

:func:`area_weighted_huber` is the training loss of the cross-domain image embedding: the
Huber loss of the difference of two maps, each grid point weighted by its area (the
Driscoll–Healy quadrature weight of its row), so that the crowded rows near the poles count
no more than the sphere they cover. With the weights normalised to mean 1 over the grid, it is
``(1/4π) ∫_{S²} Huber(p − t) dΩ`` per channel by the grid quadrature, averaged over channels
(and the batch with ``reduction="mean"``). The quadrature is exact when ``Huber(p − t)`` has
degree ``< 2b``, e.g. when ``|p − t| < delta`` everywhere and ``p − t`` has degree ``< b``; in
the linear part of the Huber loss it is accurate to the quadrature's error only.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.sphere.grid import dh_weights, grid_bandwidth

__all__ = ["area_weighted_huber"]


def area_weighted_huber(pred: Tensor, target: Tensor, *, delta: float = 1.0,
                        reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """Area-weighted Huber loss of maps ``pred, target`` ``(B, C, 2b, 2b)`` (or any ``(..., C,
    2b, 2b)``), breakpoint ``delta``: ``Σ_{c,j,k} w_j H(p − t) / (C Σ_{j,k} w_j)`` per map,
    ``(...,)`` with ``reduction="none"``, its mean over the leading dimensions with ``"mean"``."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise InvalidInputError("pred and target must be tensors")
    if pred.shape != target.shape:
        raise ShapeError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same "
                         "shape")
    b = grid_bandwidth(pred, None, "pred")
    if pred.ndim < 3:
        raise ShapeError(f"pred and target must have shape (..., C, 2b, 2b), got {tuple(pred.shape)}")
    if not pred.is_floating_point() or pred.dtype != target.dtype:
        raise InvalidInputError(f"pred and target must share a floating dtype, got {pred.dtype} and "
                                f"{target.dtype}")
    if not delta > 0:
        raise InvalidInputError(f"delta must be > 0, got {delta!r}")
    if reduction not in ("mean", "none"):
        raise InvalidInputError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    w = dh_weights(b, dtype=pred.dtype, device=pred.device)
    w = w / w.mean()  # mean 1 over the rows, so mean 1 over the grid
    h = F.huber_loss(pred, target, reduction="none", delta=delta)
    per_map = (h * w[:, None]).mean(dim=(-3, -2, -1))
    return per_map.mean() if reduction == "mean" else per_map
