"""Real spherical harmonic transforms on the Driscoll–Healy grid.

``sht`` maps grid signals ``(..., 2B, 2B)`` to real coefficients ``(..., B²)`` (order and
sign conventions in :mod:`equivision.sphere.legendre`), ``isht`` maps them back. Both are
exact for band-limited signals (degree ``< B``), batched over any leading dimensions,
differentiable, and run in the input's dtype (float32 or float64) on its device.

Route: a real FFT over azimuth, then for each order ``m`` one matrix product against
precomputed (quadrature-weighted) Legendre values, all orders in a single batched matmul.
The Legendre tables are built in float64 once per ``(B, dtype, device)`` and cached. The FFT
output is transposed once to ``(m, θ, batch)`` so that the product runs over all orders at
once with the batch (real and imaginary parts) as columns.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from equivision._validation import check_finite, check_floating
from equivision.errors import InvalidInputError, ShapeError
from equivision.sphere.grid import Grid, check_bandwidth, grid_bandwidth
from equivision.sphere.legendre import degree_order, legendre_table

_SQRT2 = math.sqrt(2.0)


@lru_cache(maxsize=32)
def _index_tables(bandwidth: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Gather indices between real coefficients ``l·l + l + m`` and the stacked products
    ``(2 [cos, sin], B [|m|], B [l])`` flattened: ``fwd[i]`` is the product row of coefficient
    ``i``; ``inv[r]`` is the coefficient of product row ``r`` (any index where ``l < |m|`` or for
    the sine part of ``m = 0``: the inverse table is zero there, so it never contributes)."""
    b = bandwidth
    ls, ms = degree_order(b)
    fwd = ((ms < 0).long() * b + ms.abs()) * b + ls
    inv = torch.zeros(2 * b * b, dtype=torch.int64)
    inv[fwd] = torch.arange(b * b)
    return fwd.to(device), inv.to(device)


@lru_cache(maxsize=32)
def _tables(bandwidth: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Forward ``(2 [cos, sin], B [m], B [l], 2B [j])`` (quadrature-weighted) and inverse
    ``(2, B [m], B [l], 2B [j])`` Legendre tables, built in float64. The sine terms are
    ``−Im`` of the FFT (forward) and enter the inverse FFT as ``−Im`` too, hence the ``−1``;
    the inverse sine table of ``m = 0`` is zero (the inverse FFT ignores that entry)."""
    b = bandwidth
    p = legendre_table(b - 1, Grid(b).theta())  # (m, l, j), zero for l < m
    w = Grid(b).weights()
    one = torch.ones(b, dtype=torch.float64)
    m_ar = torch.arange(b)
    scale_f = torch.where(m_ar > 0, one * _SQRT2, one)  # √2 cos / √2 sin for m > 0
    scale_i = torch.where(m_ar > 0, one / _SQRT2, one)  # irfft counts m > 0 twice
    fwd = p * w * scale_f[:, None, None]
    inv = p * scale_i[:, None, None]
    fwd, inv = torch.stack([fwd, -fwd]), torch.stack([inv, -inv])
    inv[1, 0] = 0.0
    return fwd.to(dtype=dtype, device=device), inv.to(dtype=dtype, device=device)


def _check_finite_fast(t: Tensor, name: str) -> None:
    # one sum is ~30× cheaper than isfinite().all(); only a non-finite sum needs the full scan
    if t.numel() and not bool(torch.isfinite(t.detach().sum())):
        check_finite(t, name)


def _check_signal(signal: Tensor, bandwidth: int | None, check: bool) -> int:
    b = grid_bandwidth(signal, bandwidth)
    check_floating(signal, "signal")
    if signal.is_complex():
        raise InvalidInputError("signal must be real (float32/float64), got a complex tensor")
    if check:
        _check_finite_fast(signal, "signal")
    return b


def sht(signal: Tensor, bandwidth: int | None = None, *, check: bool = True) -> Tensor:
    """Real spherical harmonic coefficients of grid signals.

    ``signal``: ``(..., 2B, 2B)`` on the Driscoll–Healy grid (``[..., θ_j, φ_k]``);
    ``bandwidth``: ``B`` (optional; checked against the grid when given).
    Returns ``(..., B²)`` with ``f̂[l·l + l + m] = ∫ f Y_{l,m} dΩ`` (exact for degree ``< B``
    signals). ``check=False`` skips the NaN/inf test (one device sync) in hot loops.
    """
    b = _check_signal(signal, bandwidth, check)
    lead = signal.shape[:-2]
    x = signal.reshape(-1, 2 * b, 2 * b)
    fwd, _ = _tables(b, x.dtype, x.device)
    spec = torch.fft.rfft(x, dim=-1)[..., :b].permute(2, 0, 1)  # (B [m], N, 2B [j]) view
    # real and imaginary parts as (c, m, N, j) blocks, read by the matmul as (c, m, j, N)
    parts = torch.stack([spec.real, spec.imag]).transpose(-1, -2)
    prod = torch.matmul(fwd, parts)  # (2, m, l, N)
    idx, _ = _index_tables(b, x.device)
    out = prod.reshape(-1, prod.shape[-1]).index_select(0, idx)  # (B², N)
    return out.t().reshape(*lead, b * b)


def _check_coeffs(coeffs: Tensor, bandwidth: int | None, check: bool) -> int:
    if not isinstance(coeffs, Tensor):
        raise InvalidInputError(f"coeffs must be a torch tensor (..., B²), got {type(coeffs).__name__}")
    if coeffs.ndim < 1:
        raise ShapeError("coeffs must have shape (..., B²), got a scalar")
    check_floating(coeffs, "coeffs")
    if coeffs.is_complex():
        raise InvalidInputError("coeffs must be real spherical harmonic coefficients, got a complex tensor")
    k = coeffs.shape[-1]
    b = math.isqrt(k)
    if b * b != k or b == 0:
        raise ShapeError(f"coeffs must have shape (..., B²) for a bandwidth B, got last size {k}")
    if bandwidth is not None and check_bandwidth(bandwidth) != b:
        raise ShapeError(
            f"coeffs have {k} = {b}² entries (bandwidth {b}) but bandwidth={bandwidth} was given"
        )
    if check:
        _check_finite_fast(coeffs, "coeffs")
    return b


def isht(coeffs: Tensor, bandwidth: int | None = None, *, check: bool = True) -> Tensor:
    """Grid signals ``(..., 2B, 2B)`` from real coefficients ``(..., B²)`` (inverse of :func:`sht`)."""
    b = _check_coeffs(coeffs, bandwidth, check)
    lead = coeffs.shape[:-1]
    c = coeffs.reshape(-1, b * b)
    n = c.shape[0]
    _, inv = _tables(b, c.dtype, c.device)
    _, idx = _index_tables(b, c.device)
    cols = c.index_select(1, idx).reshape(n, 2, b, b).permute(1, 2, 0, 3)  # (2, m, N, l)
    prod = torch.matmul(cols, inv)  # (2, m, N, 2B [j])
    spec = torch.complex(prod[0], prod[1]).permute(1, 2, 0)  # (N, j, m)
    out = torch.fft.irfft(spec, n=2 * b, dim=-1, norm="forward")
    return out.reshape(*lead, 2 * b, 2 * b)
