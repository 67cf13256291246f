"""Rotating band-limited spherical signals exactly, through Wigner-D matrices.

``rotate(f, R)`` is the grid signal ``x ↦ f(R⁻¹ x)``; ``rotate_coeffs(f̂, R)`` the same on real
coefficients. For signals of degree ``< B`` both are exact (to rounding): no resampling.
Rotations broadcast against the signal's leading dimensions, e.g. ``f (C, 2B, 2B)`` and
``R (N, 1, 3, 3)`` give ``(N, C, 2B, 2B)``. Differentiable with respect to the signal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from equivision._validation import check_last_dims
from equivision.errors import InvalidInputError, ShapeError
from equivision.sphere.basis import real_from_complex
from equivision.sphere.sht import check_coeffs, isht, sht
from equivision.sphere.wigner import euler_angles, wigner_d_iter


def _batch(signal_batch: tuple[int, ...], rotation: object, what: str) -> tuple[int, ...]:
    """The broadcast of the signal's leading dimensions and the rotations' batch."""
    if not isinstance(rotation, Tensor):
        raise InvalidInputError(f"rotation must be a tensor (..., 3, 3), got {type(rotation).__name__}")
    check_last_dims(rotation, "rotation", (3, 3))
    try:
        return tuple(torch.broadcast_shapes(tuple(signal_batch), rotation.shape[:-2]))
    except RuntimeError:
        raise ShapeError(
            f"rotation batch {tuple(rotation.shape[:-2])} (rotation {tuple(rotation.shape)}) does not "
            f"broadcast against the leading dimensions {tuple(signal_batch)} of {what}; add axes of "
            "size 1, e.g. rotation[:, None] to apply every rotation to every signal"
        ) from None


def rotate_coeffs(coeffs: Tensor, rotation: Tensor, *, check: bool = True) -> Tensor:
    """Real coefficients ``(..., B²)`` of ``x ↦ f(R⁻¹x)`` for rotations ``(..., 3, 3)``
    (leading dimensions broadcast; :class:`ShapeError` when they do not)."""
    b = check_coeffs(coeffs, None, check)
    batch = _batch(coeffs.shape[:-1], rotation, f"the coefficients {tuple(coeffs.shape)}")
    alpha, beta, gamma = euler_angles(rotation)
    ctype = torch.complex128 if coeffs.dtype == torch.float64 else torch.complex64
    L = b - 1
    blocks = []
    for l, d in enumerate(wigner_d_iter(L, beta)):
        a = coeffs[..., l * l:(l + 1) * (l + 1)].to(ctype)
        u = real_from_complex(l, dtype=ctype, device=coeffs.device)
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
    if isinstance(x, Tensor) and x.ndim >= 2:  # a mismatched batch fails before any transform
        _batch(x.shape[:-2], rotation, f"the signal {tuple(x.shape)}")
    return isht(rotate_coeffs(sht(x, check=check), rotation, check=False), check=check)


