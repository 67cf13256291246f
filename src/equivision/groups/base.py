"""The interface every group of equivision implements.

Group elements are plain tensors with a fixed trailing shape (``element_shape``) and any
leading batch shape. Every group acts on points of R^d (``space_dim``) by affine maps, and
:meth:`Group.matrix` gives that action as a homogeneous ``(d+1, d+1)`` matrix, so
``matrix(product(g, h)) == matrix(g) @ matrix(h)`` (a representation) and
``act(g, x) == (matrix(g) @ [x; 1])[:d]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from equivision._validation import check_points
from equivision.errors import InvalidInputError, ShapeError


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    """A CPU generator from a seed (sampling on CPU then moving keeps results device-independent)."""
    if generator is not None:
        return generator
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def wrap_angle(theta: Tensor) -> Tensor:
    """Wrap angles to (-π, π]."""
    return torch.atan2(torch.sin(theta), torch.cos(theta))


def rotation_matrix_2d(theta: Tensor) -> Tensor:
    """``(...,)`` angles to ``(..., 2, 2)`` counter-clockwise rotation matrices."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def homogeneous(linear: Tensor, translation: Tensor) -> Tensor:
    """``(..., d, d)`` and ``(..., d)`` to ``(..., d+1, d+1)`` affine matrices."""
    batch = torch.broadcast_shapes(linear.shape[:-2], translation.shape[:-1])
    d = linear.shape[-1]
    out = torch.zeros(*batch, d + 1, d + 1, dtype=linear.dtype, device=linear.device)
    out[..., :d, :d] = linear
    out[..., :d, d] = translation
    out[..., d, d] = 1
    return out


class Group(ABC):
    """A group with an affine action on R^d. Subclasses fix the element encoding."""

    name: str = "group"
    element_shape: tuple[int, ...] = ()
    space_dim: int = 2
    is_finite: bool = False

    # ----- structure ---------------------------------------------------------------------
    @abstractmethod
    def identity(
        self,
        batch_shape: tuple[int, ...] = (),
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """The identity element, repeated over ``batch_shape``."""

    @abstractmethod
    def product(self, g: Tensor, h: Tensor) -> Tensor:
        """``g · h`` (apply ``h`` first, then ``g``); batch shapes broadcast."""

    @abstractmethod
    def inverse(self, g: Tensor) -> Tensor:
        """``g⁻¹``."""

    @abstractmethod
    def matrix(self, g: Tensor, *, dtype: torch.dtype | None = None) -> Tensor:
        """Homogeneous matrix of the action on R^d: ``(..., d+1, d+1)``."""

    @abstractmethod
    def random(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n`` random elements ``(n, *element_shape)``, reproducible with ``seed``."""

    def allclose(self, g: Tensor, h: Tensor, atol: float = 1e-5) -> bool:
        """Whether ``g`` and ``h`` are the same elements (up to ``atol``, angles mod 2π)."""
        return bool(
            torch.allclose(
                self.matrix(g, dtype=torch.float64), self.matrix(h, dtype=torch.float64), atol=atol, rtol=0
            )
        )

    def elements(self, *, device: torch.device | str | None = None) -> Tensor:
        """All elements of a finite group ``(|G|, *element_shape)``."""
        raise InvalidInputError(f"{self.name} is not finite: its elements cannot be enumerated")

    @property
    def order(self) -> int:
        """Number of elements of a finite group."""
        raise InvalidInputError(f"{self.name} is not finite: it has no order")

    # ----- action on points ----------------------------------------------------------------
    def act(self, g: Tensor, points: Tensor) -> Tensor:
        """Apply ``g`` to points ``(..., N, d)``; ``g`` ``(..., *element_shape)`` broadcasts
        against the leading dimensions of ``points``. Returns ``(..., N, d)``."""
        self.check_element(g)
        check_points(points, "points", self.space_dim)
        m = self.matrix(g, dtype=points.dtype).to(points.device)
        d = self.space_dim
        return points @ m[..., :d, :d].transpose(-1, -2) + m[..., None, :d, d]

    # ----- validation ----------------------------------------------------------------------
    def check_element(self, g: Tensor) -> None:
        """Raise :class:`ShapeError` unless ``g`` is a tensor of this group's elements."""
        if not isinstance(g, Tensor):
            raise InvalidInputError(f"{self.name} elements must be tensors, got {type(g).__name__}")
        k = len(self.element_shape)
        if g.ndim < k or tuple(g.shape[g.ndim - k :]) != self.element_shape:
            want = "(..., " + ", ".join(map(str, self.element_shape)) + ")" if k else "(...,)"
            raise ShapeError(f"{self.name} elements must have shape {want}, got {tuple(g.shape)}")

    def __repr__(self) -> str:
        return self.name
