"""The change of basis between real and complex spherical harmonics, defined once.

Real orthonormal harmonics without the Condon–Shortley phase (:mod:`equivision.sphere.legendre`)
against complex ones with it, ``Y_l^m``; for ``μ > 0``:

* ``Y_{l,0} = Y_l^0``,
* ``Y_{l,μ} = ((−1)^μ Y_l^μ + Y_l^{−μ}) / √2``,
* ``Y_{l,−μ} = i (Y_l^{−μ} − (−1)^μ Y_l^μ) / √2``.

:func:`real_from_complex` is this map as a matrix ``U`` (``Y_real = U Y_complex``); the Wigner-D
matrices in the real basis (:mod:`~equivision.sphere.wigner`, :mod:`~equivision.sphere.rotate`)
conjugate by it, and the complex coefficients of :func:`equivision.sphere.complex_coeffs` are
``c = Uᵀ a``, gathered by :func:`complex_coeff_gathers` from the same matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision.errors import InvalidInputError
from equivision.sphere.cache import TableCache


def _build_u(l: int) -> Tensor:
    u = torch.zeros(2 * l + 1, 2 * l + 1, dtype=torch.complex128)
    r2 = 1 / math.sqrt(2)
    u[l, l] = 1
    for mu in range(1, l + 1):
        sgn = (-1) ** mu
        u[l + mu, l + mu] = sgn * r2
        u[l + mu, l - mu] = r2
        u[l - mu, l + mu] = -1j * sgn * r2
        u[l - mu, l - mu] = 1j * r2
    return u


_u = TableCache(_build_u, maxsize=512)


def real_from_complex(l: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                      ) -> Tensor:
    """``U`` with ``Y_real = U Y_complex`` for degree ``l``: ``(2l+1, 2l+1)`` complex128 (or
    ``dtype``), rows real ``m``, columns complex ``m``, both ``−l … l``. Unitary.

    Cached per ``(l, dtype, device)`` and shared between calls: do not write to it in place
    (an in-place write is detected and the next call rebuilds it)."""
    if isinstance(l, bool) or not isinstance(l, int) or l < 0:
        raise InvalidInputError(f"l must be a non-negative integer, got {l!r}")
    return _u(l, dtype=dtype, device=device)


def _build_gathers(bandwidth: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    b = bandwidth
    pad = b * b  # index of the zero appended to the coefficients
    ip = torch.full((b, 2 * b - 1), pad, dtype=torch.int64)
    i_n = torch.full((b, 2 * b - 1), pad, dtype=torch.int64)
    wr = torch.zeros(b, 2 * b - 1, dtype=torch.float64)
    wi = torch.zeros(b, 2 * b - 1, dtype=torch.float64)
    for l in range(b):
        u = _build_u(l)
        for col in range(2 * l + 1):  # complex m = col − l
            # each column of U holds one real entry and (m ≠ 0) one imaginary entry
            (r,) = torch.nonzero(u[:, col].real).flatten().tolist()
            j = b - 1 - l + col
            ip[l, j], wr[l, j] = l * l + r, u[r, col].real
            im = torch.nonzero(u[:, col].imag).flatten().tolist()
            if im:
                (r,) = im
                i_n[l, j], wi[l, j] = l * l + r, u[r, col].imag
    return ip.reshape(-1), i_n.reshape(-1), wr, wi


_gathers = TableCache(_build_gathers)


def complex_coeff_gathers(bandwidth: int, *, dtype: torch.dtype | None = None,
                          device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gathers from real coefficients ``a (..., B²)`` padded with one zero (index ``B²``) to the
    complex ones ``c = Uᵀ a`` in the layout ``[l, m + B − 1]`` (``(B, 2B − 1)``):
    ``Re c = wr · a[ip]``, ``Im c = wi · a[in]``. Returns ``(ip (B(2B−1),), in (B(2B−1),),
    wr (B, 2B−1), wi (B, 2B−1))``, the weights float64 or ``dtype``; cached, read-only by contract
    as :func:`real_from_complex`."""
    return _gathers(bandwidth, dtype=dtype, device=device)
