"""The equivariance contract, as a test harness for the suite and for users' own modules.

A function ``f`` is equivariant to a group acting on its input by ``act_in`` and on its
output by ``act_out`` when ``f(act_in(g, x)) == act_out(g, f(x))`` for every element ``g``.
:func:`equivariance_error` measures the worst relative violation over the elements given;
:func:`assert_equivariant` turns it into a check with a stated tolerance.

Example::

    from equivision.groups import C4, rotate_image
    from equivision.testing import assert_equivariant

    blur = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)  # not equivariant in general
    assert_equivariant(blur, x, rotate_image_action(C4), rotate_image_action(C4),
                       C4.elements(), tol=1e-5)             # raises EquivarianceError
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from equivision.errors import EquivarianceError, InvalidInputError

Action = Callable[[Any, Any], Any]
"""``action(g, x) -> g·x`` for one group element ``g`` and one input ``x``."""


def invariant(g: Any, y: Any) -> Any:
    """The trivial action ``g·y = y``: pass as ``act_out`` to test invariance."""
    return y


def _flatten(y: Any) -> Tensor:
    if isinstance(y, Tensor):
        return y.reshape(-1)
    if isinstance(y, (tuple, list)):
        if not y:
            return torch.zeros(0)
        return torch.cat([_flatten(v).to(torch.float64) for v in y])
    if isinstance(y, dict):
        return torch.cat([_flatten(y[k]).to(torch.float64) for k in sorted(y)])
    raise InvalidInputError(f"outputs must be tensors (or tuples/dicts of them), got {type(y).__name__}")


def _iter_elements(elements: Iterable[Any] | Tensor) -> list[Any]:
    if isinstance(elements, Tensor):
        if elements.ndim == 0:
            return [elements]
        return list(elements.unbind(0))
    out = list(elements)
    if not out:
        raise InvalidInputError("elements is empty: give at least one group element to test")
    return out


def equivariance_errors(
    fn: Callable[[Any], Any],
    x: Any,
    act_in: Action,
    act_out: Action | None,
    elements: Iterable[Any] | Tensor,
) -> list[float]:
    """Relative equivariance error ``|f(g·x) − g·f(x)| / |g·f(x)|`` for each element.

    Norms are Frobenius norms over the whole output (tensors, or tuples/dicts of tensors,
    flattened together). ``act_out=None`` tests invariance. Evaluated under ``no_grad``.
    """
    act_out = invariant if act_out is None else act_out
    errs: list[float] = []
    with torch.no_grad():
        fx = fn(x)
        for g in _iter_elements(elements):
            lhs = _flatten(fn(act_in(g, x))).to(torch.float64)
            rhs = _flatten(act_out(g, fx)).to(torch.float64)
            if lhs.shape != rhs.shape:
                raise InvalidInputError(
                    f"f(g·x) has {lhs.numel()} values but g·f(x) has {rhs.numel()}: "
                    "act_out does not match the output of fn"
                )
            num = torch.linalg.vector_norm(lhs - rhs)
            den = torch.linalg.vector_norm(rhs)
            if not bool(torch.isfinite(num)):
                errs.append(float("inf"))
            elif float(den) == 0.0:
                # g·f(x) is exactly zero: fall back to the absolute error
                errs.append(float(num))
            else:
                errs.append(float(num / den))
    return errs


def equivariance_error(
    fn: Callable[[Any], Any],
    x: Any,
    act_in: Action,
    act_out: Action | None,
    elements: Iterable[Any] | Tensor,
) -> float:
    """The worst relative equivariance error over ``elements`` (see :func:`equivariance_errors`)."""
    return max(equivariance_errors(fn, x, act_in, act_out, elements))


def assert_equivariant(
    fn: Callable[[Any], Any],
    x: Any,
    act_in: Action,
    act_out: Action | None,
    elements: Iterable[Any] | Tensor,
    tol: float,
) -> float:
    """Check ``fn(act_in(g, x)) ≈ act_out(g, fn(x))`` for every element, to ``tol`` relative.

    Returns the worst error measured, so tests can also report it. Raises
    :class:`~equivision.errors.EquivarianceError` (an ``AssertionError``) naming the worst
    element when the tolerance is exceeded.
    """
    if not tol > 0:
        raise InvalidInputError(f"tol must be positive, got {tol}")
    elems = _iter_elements(elements)
    errs = equivariance_errors(fn, x, act_in, act_out, elems)
    worst = max(range(len(errs)), key=lambda i: errs[i])
    if not errs[worst] <= tol:
        g = elems[worst]
        g_txt = g.tolist() if isinstance(g, Tensor) else g
        raise EquivarianceError(
            f"not equivariant: relative error {errs[worst]:.3e} > tol {tol:.1e} "
            f"for element {g_txt} (worst of {len(errs)}; {sum(e > tol for e in errs)} failed)"
        )
    return errs[worst]


__all__ = [
    "Action",
    "assert_equivariant",
    "equivariance_error",
    "equivariance_errors",
    "invariant",
]
