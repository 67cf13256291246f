"""Groups acting on the plane R^2.

Coordinates follow the mathematical convention: x to the right, y up, angles counter-
clockwise. On images (see :mod:`equivision.groups.signals`) y points up the rows, so a
rotation by +90° is ``torch.rot90(image, 1, dims=(-2, -1))``.

Element encodings (trailing shape):

=====================  ==========  ================================================
group                  shape       meaning
=====================  ==========  ================================================
``Translations2D``     ``(2,)``    translation vector ``t``
``CyclicGroup(N)``     ``()``      integer ``k``: rotation by ``2πk/N``
``DihedralGroup(N)``   ``(2,)``    integers ``(k, f)``: ``r^k s^f``, ``s`` = mirror x → −x
``SO2``                ``()``      angle ``θ`` in (−π, π]
``SE2``                ``(3,)``    ``(tx, ty, θ)``: ``x ↦ R_θ x + t``
``ScaleTranslation2D`` ``(3,)``    ``(tx, ty, s)`` with ``s > 0``: ``x ↦ s x + t``
=====================  ==========  ================================================
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.groups.base import (
    Group,
    homogeneous,
    make_generator,
    rotation_matrix_2d,
    wrap_angle,
)


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    return dtype if dtype is not None else torch.get_default_dtype()


class Translations2D(Group):
    """(R^2, +). Random elements are Gaussian with standard deviation ``scale``."""

    element_shape = (2,)
    space_dim = 2

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)
        self.name = "T2"

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        return torch.zeros(*batch_shape, 2, dtype=_float_dtype(dtype), device=device)

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        return g + h

    def inverse(self, g: Tensor) -> Tensor:
        return -g

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        g = g.to(_float_dtype(dtype) if dtype is not None else g.dtype)
        eye = torch.eye(2, dtype=g.dtype, device=g.device).expand(*g.shape[:-1], 2, 2)
        return homogeneous(eye, g)

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        t = torch.randn(n, 2, generator=gen, dtype=torch.float64) * self.scale
        return t.to(dtype=_float_dtype(dtype), device=device)


class CyclicGroup(Group):
    """C_N, the rotations by multiples of 2π/N about the origin."""

    element_shape = ()
    space_dim = 2
    is_finite = True

    def __init__(self, n: int) -> None:
        if int(n) != n or n < 1:
            raise InvalidInputError(f"C_N needs a positive integer N, got {n}")
        self.n = int(n)
        self.name = f"C{self.n}"

    @property
    def order(self) -> int:
        return self.n

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        return torch.zeros(batch_shape, dtype=torch.long, device=device)

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        return torch.remainder(g + h, self.n)

    def inverse(self, g: Tensor) -> Tensor:
        return torch.remainder(-g, self.n)

    def angle(self, g: Tensor, *, dtype: torch.dtype | None = None) -> Tensor:
        """Rotation angle ``2πk/N`` of each element."""
        return g.to(_float_dtype(dtype)) * (2 * math.pi / self.n)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        lin = _exact_rotation_matrix(g, self.n, _float_dtype(dtype))
        return homogeneous(lin, torch.zeros(*g.shape, 2, dtype=lin.dtype, device=g.device))

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        return torch.randint(0, self.n, (n,), generator=gen).to(device)

    def elements(self, *, device=None) -> Tensor:
        return torch.arange(self.n, device=device)

    def allclose(self, g: Tensor, h: Tensor, atol: float = 0.0) -> bool:
        return bool((torch.remainder(g, self.n) == torch.remainder(h, self.n)).all())

    def check_element(self, g: Tensor) -> None:
        super().check_element(g)
        if g.is_floating_point() or g.is_complex():
            raise InvalidInputError(f"{self.name} elements are integer tensors, got {g.dtype}")


def _exact_rotation_matrix(k: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """Rotation by 2πk/n with exact zeros and ones at multiples of 90° (so pixel
    permutations stay exact)."""
    theta = k.to(torch.float64) * (2 * math.pi / n)
    m = rotation_matrix_2d(theta)
    # cos/sin of multiples of π/2 are off by ~1e-16; snap them so 90° rotations are exact
    m = torch.where((m.round() - m).abs() < 1e-12, m.round(), m)
    return m.to(dtype)


class DihedralGroup(Group):
    """D_N: rotations by 2πk/N and their compositions with the mirror ``s: (x, y) ↦ (−x, y)``.

    Element ``(k, f)`` is ``r^k s^f`` (mirror first, then rotate). ``s r^k = r^-k s`` gives
    ``(k1, f1)(k2, f2) = (k1 + (−1)^f1 k2, f1 xor f2)``.
    """

    element_shape = (2,)
    space_dim = 2
    is_finite = True

    def __init__(self, n: int) -> None:
        if int(n) != n or n < 1:
            raise InvalidInputError(f"D_N needs a positive integer N, got {n}")
        self.n = int(n)
        self.name = f"D{self.n}"

    @property
    def order(self) -> int:
        return 2 * self.n

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        return torch.zeros(*batch_shape, 2, dtype=torch.long, device=device)

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        k1, f1 = g[..., 0], g[..., 1]
        k2, f2 = h[..., 0], h[..., 1]
        sign = 1 - 2 * f1
        return torch.stack([torch.remainder(k1 + sign * k2, self.n), (f1 + f2) % 2], -1)

    def inverse(self, g: Tensor) -> Tensor:
        k, f = g[..., 0], g[..., 1]
        # (r^k)^-1 = r^-k; (r^k s)^-1 = s r^-k = r^k s
        k_inv = torch.where(f == 1, k, torch.remainder(-k, self.n))
        return torch.stack([k_inv, f], -1)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        dt = _float_dtype(dtype)
        rot = _exact_rotation_matrix(g[..., 0], self.n, dt)
        flip = torch.ones(*g.shape[:-1], 2, dtype=dt, device=g.device)
        flip[..., 0] = 1 - 2 * g[..., 1].to(dt)
        lin = rot * flip[..., None, :]  # rot @ diag(flip)
        return homogeneous(lin, torch.zeros(*g.shape[:-1], 2, dtype=dt, device=g.device))

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        k = torch.randint(0, self.n, (n,), generator=gen)
        f = torch.randint(0, 2, (n,), generator=gen)
        return torch.stack([k, f], -1).to(device)

    def elements(self, *, device=None) -> Tensor:
        k = torch.arange(self.n).repeat(2)
        f = torch.arange(2).repeat_interleave(self.n)
        return torch.stack([k, f], -1).to(device)

    def allclose(self, g: Tensor, h: Tensor, atol: float = 0.0) -> bool:
        same_k = torch.remainder(g[..., 0], self.n) == torch.remainder(h[..., 0], self.n)
        return bool((same_k & (g[..., 1] == h[..., 1])).all())

    def check_element(self, g: Tensor) -> None:
        super().check_element(g)
        if g.is_floating_point() or g.is_complex():
            raise InvalidInputError(f"{self.name} elements are integer tensors, got {g.dtype}")


class SO2(Group):
    """Rotations of the plane; elements are angles in (−π, π]."""

    element_shape = ()
    space_dim = 2

    def __init__(self) -> None:
        self.name = "SO2"

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        return torch.zeros(batch_shape, dtype=_float_dtype(dtype), device=device)

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        return wrap_angle(g + h)

    def inverse(self, g: Tensor) -> Tensor:
        return wrap_angle(-g)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        g = g.to(dtype) if dtype is not None else g
        lin = rotation_matrix_2d(g)
        return homogeneous(lin, torch.zeros(*g.shape, 2, dtype=g.dtype, device=g.device))

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        th = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
        return th.to(dtype=_float_dtype(dtype), device=device)


class SE2(Group):
    """Roto-translations R^2 ⋊ SO(2); element ``(tx, ty, θ)`` maps ``x ↦ R_θ x + t``.

    ``(t, θ)(t', θ') = (R_θ t' + t, θ + θ')``. Random translations are Gaussian with
    standard deviation ``translation_scale``; random angles uniform.
    """

    element_shape = (3,)
    space_dim = 2

    def __init__(self, translation_scale: float = 1.0) -> None:
        self.translation_scale = float(translation_scale)
        self.name = "SE2"

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        return torch.zeros(*batch_shape, 3, dtype=_float_dtype(dtype), device=device)

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        rot = rotation_matrix_2d(g[..., 2])
        t = (rot @ h[..., :2, None])[..., 0] + g[..., :2]
        th = wrap_angle(g[..., 2] + h[..., 2])
        return torch.cat([t, th[..., None]], -1)

    def inverse(self, g: Tensor) -> Tensor:
        rot_t = rotation_matrix_2d(g[..., 2]).transpose(-1, -2)
        t = -(rot_t @ g[..., :2, None])[..., 0]
        return torch.cat([t, wrap_angle(-g[..., 2:3])], -1)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        g = g.to(dtype) if dtype is not None else g
        return homogeneous(rotation_matrix_2d(g[..., 2]), g[..., :2])

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        t = torch.randn(n, 2, generator=gen, dtype=torch.float64) * self.translation_scale
        th = (torch.rand(n, 1, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
        return torch.cat([t, th], -1).to(dtype=_float_dtype(dtype), device=device)

    @staticmethod
    def from_parts(translation: Tensor, angle: Tensor) -> Tensor:
        """Build elements from ``(..., 2)`` translations and ``(...,)`` angles."""
        return torch.cat([translation, wrap_angle(angle)[..., None]], -1)


class ScaleTranslation2D(Group):
    """Scale-translations R^2 ⋊ R+; element ``(tx, ty, s)`` maps ``x ↦ s x + t``.

    ``(t, s)(t', s') = (s t' + t, s s')``, ``(t, s)⁻¹ = (−t/s, 1/s)``. Random scales are
    log-uniform in ``[1/max_scale, max_scale]``; translations Gaussian.
    """

    element_shape = (3,)
    space_dim = 2

    def __init__(self, translation_scale: float = 1.0, max_scale: float = 2.0) -> None:
        if not max_scale >= 1:
            raise InvalidInputError(f"max_scale must be >= 1, got {max_scale}")
        self.translation_scale = float(translation_scale)
        self.max_scale = float(max_scale)
        self.name = "ScaleTranslation2D"

    def identity(self, batch_shape=(), *, dtype=None, device=None) -> Tensor:
        g = torch.zeros(*batch_shape, 3, dtype=_float_dtype(dtype), device=device)
        g[..., 2] = 1
        return g

    def product(self, g: Tensor, h: Tensor) -> Tensor:
        t = g[..., 2:3] * h[..., :2] + g[..., :2]
        return torch.cat([t, g[..., 2:3] * h[..., 2:3]], -1)

    def inverse(self, g: Tensor) -> Tensor:
        s = g[..., 2:3]
        return torch.cat([-g[..., :2] / s, 1 / s], -1)

    def matrix(self, g: Tensor, *, dtype=None) -> Tensor:
        self.check_element(g)
        g = g.to(dtype) if dtype is not None else g
        if bool((g[..., 2] <= 0).any()):
            raise InvalidInputError("scale-translation elements need a positive scale s")
        eye = torch.eye(2, dtype=g.dtype, device=g.device)
        return homogeneous(g[..., 2, None, None] * eye, g[..., :2])

    def random(self, n, *, seed=None, generator=None, dtype=None, device=None) -> Tensor:
        gen = make_generator(seed, generator)
        t = torch.randn(n, 2, generator=gen, dtype=torch.float64) * self.translation_scale
        log_s = (torch.rand(n, 1, generator=gen, dtype=torch.float64) * 2 - 1) * math.log(self.max_scale)
        return torch.cat([t, log_s.exp()], -1).to(dtype=_float_dtype(dtype), device=device)


C4 = CyclicGroup(4)
C8 = CyclicGroup(8)
D4 = DihedralGroup(4)
