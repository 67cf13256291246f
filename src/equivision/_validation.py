"""Small input checks shared by the whole library (not public API)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from equivision.errors import EquivisionError, InvalidInputError, ShapeError


def as_tensor(x: object, name: str, *, dtype: torch.dtype | None = None) -> Tensor:
    """Accept tensors, NumPy arrays and nested sequences; refuse everything else."""
    if isinstance(x, Tensor):
        t = x
    else:
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as e:
            raise InvalidInputError(f"{name} must be a tensor or array, got {type(x).__name__}") from e
    if dtype is not None:
        t = t.to(dtype)
    return t


def check_floating(t: Tensor, name: str) -> None:
    if not t.is_floating_point():
        raise InvalidInputError(f"{name} must be a floating-point tensor (float32 or float64), got {t.dtype}")


def check_finite(t: Tensor, name: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise InvalidInputError(f"{name} contains {n_bad} NaN or infinite values; remove or fix them")


def check_last_dims(t: Tensor, name: str, last: Sequence[int], *, min_ndim: int | None = None) -> None:
    """Check the trailing dimensions, e.g. ``last=(3, 3)`` for rotation matrices."""
    k = len(last)
    if t.ndim < (min_ndim if min_ndim is not None else k) or tuple(t.shape[t.ndim - k :]) != tuple(last):
        want = "(..., " + ", ".join(str(s) for s in last) + ")"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(t.shape)}")


def check_points(t: Tensor, name: str, dim: int = 3, *, min_points: int = 1) -> None:
    """Point sets are ``(..., N, dim)`` floating tensors with finite values."""
    check_floating(t, name)
    if t.ndim < 2 or t.shape[-1] != dim:
        raise ShapeError(f"{name} must have shape (..., N, {dim}), got {tuple(t.shape)}")
    if t.shape[-2] < min_points:
        from equivision.errors import DegenerateGeometryError

        raise DegenerateGeometryError(f"{name} has {t.shape[-2]} points; at least {min_points} are needed")
    check_finite(t, name)


def require_positive(value: float, name: str, *, allow_zero: bool = False,
                     error: type[EquivisionError] = InvalidInputError) -> None:
    """``value`` must be a finite number > 0 (>= 0 with ``allow_zero``); raises ``error``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise error(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def require_range(value: float, name: str, low: float, high: float, *,
                  error: type[EquivisionError] = InvalidInputError) -> None:
    """``value`` must be a finite number in ``[low, high]``; raises ``error``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and low <= value <= high
    if not ok:
        raise error(f"{name} must be a finite number in [{low:g}, {high:g}], got {value!r}")
