"""Rotations written as text, for command lines and configs.

Accepted forms (:data:`ROTATION_FORMS`; the keyword is case-insensitive, numbers are separated
by commas and/or spaces, angles in degrees):

* ``"identity"``;
* ``"axis-angle x,y,z DEG"``: a rotation by ``DEG`` degrees about the axis ``(x, y, z)``
  (normalised here), counter-clockwise looking down the axis;
* ``"euler-zyz A,B,G"``: ``Rz(A) Ry(B) Rz(G)``, the ZYZ convention of
  :class:`~equivision.groups.spatial.SO3`;
* ``"quaternion x,y,z,w"``: scalar last, normalised here;
* ``"matrix r11,r12,r13,r21,...,r33"``: row by row. Typed matrices carry few digits, so a
  matrix within ``1e-3`` of orthogonal (``max |RᵀR − I|``) is accepted and replaced by the
  nearest rotation; anything further, or a reflection, is refused.
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.groups.spatial import SO3, check_rotation_matrix

ROTATION_FORMS: tuple[str, ...] = (
    "identity",
    "axis-angle x,y,z DEG",
    "euler-zyz A,B,G",
    "quaternion x,y,z,w",
    "matrix r11,r12,r13,r21,r22,r23,r31,r32,r33",
)
#: Tolerance on ``max |RᵀR − I|`` of a typed matrix (4 significant digits give about 1e-4).
TYPED_MATRIX_ATOL = 1e-3

_COUNTS = {"identity": 0, "axis-angle": 4, "euler-zyz": 3, "quaternion": 4, "matrix": 9}


def _refuse(text: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"cannot read rotation {text!r}: {why}; accepted forms: "
                             + "; ".join(f"'{f}'" for f in ROTATION_FORMS))


def parse_rotation(text: str, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The rotation matrix ``(3, 3)`` that ``text`` writes (module docstring for the forms).

    Raises :class:`~equivision.errors.InvalidInputError` naming the accepted forms for text
    that does not parse, and :class:`~equivision.errors.NotARotationError` for a matrix that
    is not a rotation."""
    if not isinstance(text, str):
        raise InvalidInputError(f"a rotation must be given as text, got {type(text).__name__}")
    head, _, rest = text.strip().partition(" ")
    kind = head.lower()
    if kind not in _COUNTS:
        raise _refuse(text, f"unknown form {head!r}" if head else "empty")
    fields = [x for x in re.split(r"[,\s]+", rest.strip()) if x]
    if len(fields) != _COUNTS[kind]:
        raise _refuse(text, f"'{kind}' takes {_COUNTS[kind]} numbers, got {len(fields)}")
    try:
        nums = [float(x) for x in fields]
    except ValueError:
        raise _refuse(text, "not all of its values are numbers") from None
    if not all(math.isfinite(x) for x in nums):
        raise _refuse(text, "its values must be finite")
    x = torch.tensor(nums, dtype=torch.float64)
    if kind == "identity":
        r = torch.eye(3, dtype=torch.float64)
    elif kind == "axis-angle":
        if float(x[:3].norm()) == 0:
            raise _refuse(text, "the axis has zero length")
        r = SO3.from_axis_angle(x[:3], x[3] * (math.pi / 180))
    elif kind == "euler-zyz":
        r = SO3.from_euler_zyz(*(x * (math.pi / 180)))
    elif kind == "quaternion":
        if float(x.norm()) == 0:
            raise _refuse(text, "a zero quaternion is no rotation")
        r = SO3.from_quaternion(x)
    else:
        m = x.reshape(3, 3)
        check_rotation_matrix(m, "matrix", atol=TYPED_MATRIX_ATOL)
        r = SO3.project(m)
    return r.to(dtype)


__all__ = ["ROTATION_FORMS", "TYPED_MATRIX_ATOL", "parse_rotation"]
