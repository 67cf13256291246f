"""Errors of estimated rotations: the geodesic angle, the median error and Acc@15°/Acc@30°.

The error between an estimate ``R̂`` and the truth ``R`` is the angle of ``Rᵀ R̂``:
``arccos((tr(Rᵀ R̂) − 1) / 2)`` in ``[0, π]``, computed from the unit quaternion ``(w, v)`` of
``Rᵀ R̂`` as ``2 atan2(‖v‖, |w|)``, the same angle without arccos's loss of precision near 0.

Objects with a half-turn symmetry admit two answers. ``symmetry_axis=u`` (unit or not, in the
frame the rotations are applied to, e.g. a's object frame for a relative pose ``R`` with
``b = R·a``) counts both: the error is ``min(e(R̂, R), e(R̂, R S_u))`` with ``S_u`` the half turn
about ``u``. ``fold=True`` is the axis-free form ``min(e, π − e)`` used when the axis is not
known (a lower bound of the axis form for any axis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.groups.spatial import SO3, check_rotation_matrix

__all__ = ["RotationErrorSummary", "rotation_error_summary", "rotation_errors"]


def _angle(r1: Tensor, r2: Tensor) -> Tensor:
    # from the quaternion of r2ᵀ r1: 2 atan2(|v|, |w|) keeps full precision near 0 and π
    q = SO3.to_quaternion(r2.transpose(-1, -2) @ r1, check=False)
    return 2 * torch.atan2(q[..., :3].norm(dim=-1), q[..., 3].abs())  # (x, y, z, w)


def rotation_errors(estimated: Tensor, truth: Tensor, *, symmetry_axis: Tensor | None = None,
                    fold: bool = False) -> Tensor:
    """Geodesic errors ``(...,)`` in radians of rotations ``estimated, truth`` ``(..., 3, 3)``
    (leading dimensions broadcast); ``symmetry_axis`` ``(3,)`` or ``(..., 3)`` and ``fold`` as in
    the module docstring (not both)."""
    check_rotation_matrix(estimated, "estimated")
    if isinstance(truth, Tensor) and truth.device != estimated.device:
        raise InvalidInputError(f"estimated is on {estimated.device} but truth on {truth.device}; "
                                "move both to one device")
    check_rotation_matrix(truth, "truth")
    if symmetry_axis is not None and fold:
        raise InvalidInputError("give either symmetry_axis or fold=True, not both")
    dt = torch.promote_types(estimated.dtype, truth.dtype)
    est, tru = estimated.to(dt), truth.to(dt)
    try:
        torch.broadcast_shapes(est.shape, tru.shape)
    except RuntimeError:
        raise ShapeError(f"estimated {tuple(est.shape)} and truth {tuple(tru.shape)} do not broadcast") \
            from None
    err = _angle(est, tru)
    if fold:
        return torch.minimum(err, math.pi - err)
    if symmetry_axis is not None:
        u = torch.as_tensor(symmetry_axis, dtype=dt, device=est.device)
        if u.ndim < 1 or u.shape[-1] != 3:
            raise ShapeError(f"symmetry_axis must have shape (3,) or (..., 3), got {tuple(u.shape)}")
        norm = u.norm(dim=-1, keepdim=True)
        if not bool(torch.isfinite(u).all()) or bool((norm == 0).any()):
            raise InvalidInputError("symmetry_axis must be a finite non-zero vector")
        s = SO3.from_rotvec(math.pi * u / norm)
        err = torch.minimum(err, _angle(est, tru @ s))
    return err


@dataclass(frozen=True)
class RotationErrorSummary:
    """``median_deg``: median error in degrees; ``accuracy``: ``{threshold°: fraction of errors
    below it}`` (e.g. ``accuracy[15]`` is Acc@15); ``n``: number of pairs."""

    median_deg: float
    accuracy: dict[float, float]
    n: int


def rotation_error_summary(estimated: Tensor, truth: Tensor, *, symmetry_axis: Tensor | None = None,
                           fold: bool = False,
                           thresholds_deg: Sequence[float] = (15.0, 30.0)) -> RotationErrorSummary:
    """Median error and Acc@threshold (errors ``<`` threshold) over all pairs of
    :func:`rotation_errors` (same arguments). The median of an even count is the mean of the
    two middle errors (NumPy's definition)."""
    err = rotation_errors(estimated, truth, symmetry_axis=symmetry_axis, fold=fold).flatten()
    if err.numel() == 0:
        raise InvalidInputError("no rotations to summarise")
    deg = err.to(torch.float64) * (180.0 / math.pi)
    return RotationErrorSummary(median_deg=float(deg.quantile(0.5)),
                                accuracy={float(t): float((deg < t).double().mean()) for t in thresholds_deg},
                                n=int(deg.numel()))
