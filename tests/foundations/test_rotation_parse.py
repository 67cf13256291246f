"""Rotations written as text (equivision.groups.parse_rotation)."""

from __future__ import annotations

import math

import pytest
import torch

from equivision.errors import InvalidInputError, NotARotationError
from equivision.groups import ROTATION_FORMS, SO3, parse_rotation


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b.to(a.dtype), atol=1e-12, rtol=0)


def _about(axis: list[float], angle: float) -> torch.Tensor:
    f64 = torch.float64
    return SO3.from_axis_angle(torch.tensor(axis, dtype=f64), torch.tensor(angle, dtype=f64))


def test_axis_angle_in_degrees_counter_clockwise() -> None:
    r = parse_rotation("axis-angle 0,0,2 90")
    _close(r @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0]))
    _close(parse_rotation("Axis-Angle 1 1 0   45"),
           _about([1.0, 1, 0], math.pi / 4))


def test_euler_zyz_quaternion_matrix_and_identity() -> None:
    a, b, g = (torch.tensor(math.radians(x), dtype=torch.float64) for x in (30.0, 60.0, -45.0))
    _close(parse_rotation("euler-zyz 30, 60, -45"), SO3.from_euler_zyz(a, b, g))
    _close(parse_rotation("quaternion 0,0,2,2"),  # normalised: 90° about z
           _about([0.0, 0, 1], math.pi / 2))
    _close(parse_rotation("matrix 0,-1,0, 1,0,0, 0,0,1"), torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]))
    _close(parse_rotation(" identity "), torch.eye(3))
    assert parse_rotation("identity", dtype=torch.float32).dtype == torch.float32


def test_typed_matrix_with_four_digits_is_projected_to_a_rotation() -> None:
    r = parse_rotation("matrix 0.7071,-0.7071,0, 0.7071,0.7071,0, 0,0,1")
    SO3.check(r, atol=1e-12)
    _close(r, _about([0.0, 0, 1], math.pi / 4))


@pytest.mark.parametrize("text", ["matrix 1,0,0,0,1,0,0,0,2", "matrix 1,0,0,0,1,0,0,0,-1",
                                  "matrix 1,1,0,0,1,0,0,0,1"])
def test_non_rotation_matrices_are_refused(text: str) -> None:
    with pytest.raises(NotARotationError):
        parse_rotation(text)


@pytest.mark.parametrize("text", ["", "spin 1,2,3", "axis-angle 0,0,1", "euler-zyz 1,2", "quaternion 1,2,3,x",
                                  "matrix 1,0,0", "axis-angle 0,0,0 30", "quaternion 0,0,0,0",
                                  "euler-zyz nan,0,0", "axis-angle 0,0,1 inf", "90 degrees about z"])
def test_text_that_does_not_parse_names_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        parse_rotation(text)
    assert not isinstance(e.value, NotARotationError)
    assert all(form in str(e.value) for form in ROTATION_FORMS)


def test_not_text() -> None:
    with pytest.raises(InvalidInputError):
        parse_rotation(torch.eye(3))  # type: ignore[arg-type]
