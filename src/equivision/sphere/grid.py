"""The Driscoll–Healy equiangular grid on the sphere and its exact quadrature.

Bandwidth ``B`` means harmonic degrees ``l < B``. The grid has ``2B × 2B`` points:

* colatitude ``θ_j = π (2j + 1) / (4B)``, ``j = 0 … 2B−1`` (no point on the poles);
* azimuth ``φ_k = 2π k / (2B)``, ``k = 0 … 2B−1``.

Signals are tensors ``(..., 2B, 2B)`` indexed ``[..., j, k]`` (colatitude first). The
point ``(θ, φ)`` is the unit vector ``(sin θ cos φ, sin θ sin φ, cos θ)``.

The weights are Driscoll & Healy's (1994) closed form, scaled so that
``Σ_jk w_j f(θ_j, φ_k) = ∫_{S²} f dΩ`` exactly for every ``f`` of degree ``< 2B``; they sum
to ``4π``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError


def check_bandwidth(bandwidth: object, name: str = "bandwidth") -> int:
    """A bandwidth is a positive integer (harmonic degrees ``l < bandwidth``)."""
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, np.integer)) or bandwidth < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {bandwidth!r}")
    return int(bandwidth)


def grid_bandwidth(signal: Tensor, bandwidth: int | None = None, name: str = "signal") -> int:
    """The bandwidth of a grid signal ``(..., 2B, 2B)``; checks it matches ``bandwidth``."""
    if not isinstance(signal, Tensor):
        raise InvalidInputError(f"{name} must be a torch tensor (..., 2B, 2B), got {type(signal).__name__}")
    if signal.ndim < 2:
        raise ShapeError(f"{name} must have shape (..., 2B, 2B), got {tuple(signal.shape)}")
    n_theta, n_phi = signal.shape[-2], signal.shape[-1]
    if n_theta != n_phi:
        raise ShapeError(
            f"{name} grid must be square (..., 2B, 2B) (Driscoll–Healy), got {n_theta} × {n_phi}"
        )
    if n_theta % 2 or n_theta == 0:
        raise ShapeError(f"{name} grid size must be even (2B × 2B), got {n_theta} × {n_phi}")
    b = n_theta // 2
    if bandwidth is not None:
        check_bandwidth(bandwidth)
        if bandwidth != b:
            raise ShapeError(
                f"{name} is a {n_theta} × {n_phi} grid, i.e. bandwidth {b}, but bandwidth={bandwidth} "
                f"was given; a bandwidth-{bandwidth} grid is {2 * bandwidth} × {2 * bandwidth}"
            )
    return b


@lru_cache(maxsize=64)
def _dh_weights_np(bandwidth: int) -> np.ndarray:
    b = bandwidth
    theta = np.pi * (2 * np.arange(2 * b) + 1) / (4 * b)
    k = np.arange(b)
    odd = 2 * k + 1
    s = (np.sin(np.outer(theta, odd)) / odd).sum(axis=1)
    w = (2.0 / b) * np.sin(theta) * s  # Σ_j w_j = 2 = ∫_0^π sin θ dθ
    return w * (2 * np.pi / (2 * b))  # times the azimuthal step: Σ_jk w_j = 4π


def dh_weights(bandwidth: int, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """Quadrature weight of each grid row ``(2B,)`` (area of one point of row ``j``)."""
    b = check_bandwidth(bandwidth)
    return torch.as_tensor(_dh_weights_np(b), dtype=dtype, device=device)


@dataclass(frozen=True)
class Grid:
    """The Driscoll–Healy ``2B × 2B`` grid of bandwidth ``B``.

    Example::

        g = Grid(16)
        f = some_function(g.points())          # (32, 32)
        integral = (g.weights()[:, None] * f).sum()
    """

    bandwidth: int

    def __post_init__(self) -> None:
        check_bandwidth(self.bandwidth)

    @property
    def shape(self) -> tuple[int, int]:
        return (2 * self.bandwidth, 2 * self.bandwidth)

    def theta(self, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
        """Colatitudes ``(2B,)``: ``π (2j + 1) / (4B)``."""
        b = self.bandwidth
        return math.pi * (2 * torch.arange(2 * b, dtype=dtype, device=device) + 1) / (4 * b)

    def phi(self, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
        """Azimuths ``(2B,)``: ``2π k / (2B)``."""
        b = self.bandwidth
        return 2 * math.pi * torch.arange(2 * b, dtype=dtype, device=device) / (2 * b)

    def angles(self, *, dtype: torch.dtype = torch.float64, device=None) -> tuple[Tensor, Tensor]:
        """``(θ, φ)`` of every point, each ``(2B, 2B)``."""
        t, p = torch.meshgrid(self.theta(dtype=dtype, device=device),
                              self.phi(dtype=dtype, device=device), indexing="ij")
        return t, p

    def points(self, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
        """Unit vectors of the grid points ``(2B, 2B, 3)``."""
        t, p = self.angles(dtype=dtype, device=device)
        return torch.stack([t.sin() * p.cos(), t.sin() * p.sin(), t.cos()], dim=-1)

    def weights(self, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
        """Exact quadrature weights per row ``(2B,)``; ``Σ_jk w_j f_jk = ∫ f dΩ`` for degree ``< 2B``."""
        return dh_weights(self.bandwidth, dtype=dtype, device=device)

    def integrate(self, signal: Tensor) -> Tensor:
        """``∫_{S²} f dΩ`` of grid signals ``(..., 2B, 2B)`` → ``(...,)``."""
        grid_bandwidth(signal, self.bandwidth)
        w = self.weights(dtype=signal.dtype, device=signal.device)
        return (signal * w[:, None]).sum(dim=(-2, -1))


def antipodal(signal: Tensor) -> Tensor:
    """``f(−x)`` of grid signals ``(..., 2B, 2B)``: exact on the Driscoll–Healy grid, whose
    antipode of ``(θ_j, φ_k)`` is the sample ``(θ_{2B−1−j}, φ_{k+B})``."""
    b = grid_bandwidth(signal)
    return torch.roll(torch.flip(signal, dims=(-2,)), shifts=b, dims=-1)


def odd_part(signal: Tensor) -> Tensor:
    """``(f(x) − f(−x)) / 2`` of grid signals ``(..., 2B, 2B)``: the odd-degree harmonics of
    ``f`` (``Y_lm(−x) = (−1)^l Y_lm(x)``). The even part alone cannot tell a rotation from the
    same rotation followed by the point reflection, so for a mirror-symmetric object (reflection
    ``M``, ``−M`` a half turn) it cannot tell the two poses a half turn apart: the odd part carries
    that decision."""
    return 0.5 * (signal - antipodal(signal))


def points_to_angles(points: Tensor) -> tuple[Tensor, Tensor]:
    """Unit vectors ``(..., 3)`` to colatitude ``θ ∈ [0, π]`` and azimuth ``φ ∈ (−π, π]``."""
    theta = torch.atan2(torch.hypot(points[..., 0], points[..., 1]), points[..., 2])
    phi = torch.atan2(points[..., 1], points[..., 0])
    return theta, phi
