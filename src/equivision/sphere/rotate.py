"""Rotating band-limited spherical signals exactly, through Wigner-D matrices.

``rotate(f, R)`` is the grid signal ``x ↦ f(R⁻¹ x)``; ``rotate_coeffs(f̂, R)`` the same on real
coefficients. For signals of degree ``< B`` both are exact (to rounding): no resampling.
Rotations broadcast against the signal's leading dimensions, e.g. ``f (C, 2B, 2B)`` and
``R (N, 1, 3, 3)`` give ``(N, C, 2B, 2B)``. Differentiable with respect to the signal.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.sphere.sht import _check_coeffs, isht, sht
from equivision.sphere.wigner import _euler, _real_from_complex, wigner_d_iter


@lru_cache(maxsize=512)
def _u(l: int, device: torch.device) -> Tensor:
    return _real_from_complex(l, device=device)


def rotate_coeffs(coeffs: Tensor, rotation: Tensor, *, check: bool = True) -> Tensor:
    """Real coefficients ``(..., B²)`` of ``x ↦ f(R⁻¹x)`` for rotations ``(..., 3, 3)``
    (leading dimensions broadcast)."""
    b = _check_coeffs(coeffs, None, check)
    if not isinstance(rotation, Tensor):
        raise InvalidInputError("rotation must be a tensor (..., 3, 3)")
    alpha, beta, gamma = _euler(rotation)
    batch = torch.broadcast_shapes(coeffs.shape[:-1], alpha.shape)
    ctype = torch.complex128 if coeffs.dtype == torch.float64 else torch.complex64
    L = b - 1
    blocks = []
    for l, d in enumerate(wigner_d_iter(L, beta)):
        a = coeffs[..., l * l:(l + 1) * (l + 1)].to(ctype)
        u = _u(l, coeffs.device).to(ctype)
        m = torch.arange(-l, l + 1, dtype=torch.float64, device=coeffs.device)
        eg = torch.exp(-1j * m * gamma[..., None]).to(ctype)
        ea = torch.exp(-1j * m * alpha[..., None]).to(ctype)
        dl = d[..., L - l:L + l + 1, L - l:L + l + 1].to(ctype)  # a copy: the buffer is reused
        ac = (a @ u) * eg  # complex coefficients, then Rz(γ)
        bc = (dl @ ac[..., None])[..., 0] * ea  # Ry(β), then Rz(α)
        blocks.append((bc @ u.conj().transpose(0, 1)).real.to(coeffs.dtype).expand(*batch, 2 * l + 1))
    return torch.cat(blocks, dim=-1)


def rotate(x: Tensor, rotation: Tensor, *, coeffs: bool = False, check: bool = True) -> Tensor:
    """Rotate band-limited spherical signals: ``(R·f)(x) = f(R⁻¹ x)``.

    ``x``: grid signals ``(..., 2B, 2B)``, or real coefficients ``(..., B²)`` with
    ``coeffs=True``; ``rotation``: ``(..., 3, 3)``, broadcast against the leading dimensions.
    Exact for signals of degree ``< B`` (higher degrees on the grid are removed first: the
    result is the rotation of the signal's band-limited part).
    """
    if coeffs:
        return rotate_coeffs(x, rotation, check=check)
    return isht(rotate_coeffs(sht(x, check=check), rotation, check=False), check=False)


