"""Real spherical harmonic transforms on the Driscoll–Healy grid.

``sht`` maps grid signals ``(..., 2B, 2B)`` to real coefficients ``(..., B²)`` (order and
sign conventions in :mod:`equivision.sphere.legendre`), ``isht`` maps them back. Both are
exact for band-limited signals (degree ``< B``), batched over any leading dimensions,
differentiable, and run in the input's dtype (float32 or float64) on its device.

Route: a real FFT over azimuth, then for each order ``m`` one matrix product against
precomputed (quadrature-weighted) Legendre values, all orders of a group in one batched
matmul with the batch as columns. Orders come in two groups, ``m < B/2`` and ``m ≥ B/2``, the
second only needing degrees ``l ≥ B/2`` (``P̄_l^m = 0`` for ``l < m``): a quarter fewer flops.
The forward transform transposes each signal's spectrum once to ``(m, θ)`` (the matmul then
reads the batch as columns without copying); the inverse produces the spectrum as
``(m, θ, batch)`` and, from ``B = 24``, runs the inverse FFT along that outer axis instead of
transposing it back. The Legendre tables are built in float64 on the CPU once per ``B`` and
cached, with their copies per dtype and device (:mod:`equivision.sphere.cache`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision._validation import check_finite, check_floating
from equivision.errors import InvalidInputError, ShapeError
from equivision.sphere.cache import TableCache
from equivision.sphere.grid import Grid, check_bandwidth, grid_bandwidth
from equivision.sphere.legendre import degree_order, legendre_table

_SQRT2 = math.sqrt(2.0)
# from this bandwidth on, an inverse FFT along the outer axis beats transposing the spectrum
# (measured on CPU: slower at B = 16, 1.2–1.6× faster at B = 32 and 64)
_OUTER_FFT_FROM = 24


def _build_index_tables(bandwidth: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gather indices between real coefficients ``l·l + l + m`` and the products, which come in
    two groups (``P̄_l^m = 0`` for ``l < m``, so orders ``m ≥ h = B // 2`` only need ``l ≥ h``):
    ``(2 [cos, sin], h [m], B [l])`` and ``(2, B − h [m], B − h [l])``, flattened and
    concatenated. ``fwd[i]`` is the product row of coefficient ``i``; ``inv1`` / ``inv2`` give
    the coefficient of each row of the two groups (any index where ``l < |m|``, whose Legendre
    rows are zero, or for the sine part of ``m = 0``, which the inverse FFT ignores)."""
    b = bandwidth
    h = b // 2
    ls, ms = degree_order(b)
    am, part = ms.abs(), (ms < 0).long()
    first = am < h
    n1 = 2 * h * b
    fwd = torch.where(first, (part * h + am) * b + ls,
                      n1 + (part * (b - h) + am - h) * (b - h) + ls - h)
    inv = torch.zeros(n1 + 2 * (b - h) ** 2, dtype=torch.int64)
    inv[fwd] = torch.arange(b * b)
    return fwd, inv[:n1], inv[n1:]


def _build_tables(bandwidth: int) -> tuple[Tensor, ...]:
    """Legendre tables of the two order groups (see :func:`_build_index_tables`), float64:
    forward ``(2 [cos, sin], h [m], B [l], 2B [j])`` and ``(2, B − h, B − h, 2B)``
    (quadrature-weighted), inverse ``(h, 2B [j], B [l])`` and ``(B − h, 2B, B − h)``. The sine
    terms are ``−Im`` of the FFT, hence the forward ``−1`` (the inverse applies it to the
    coefficients)."""
    b = bandwidth
    h = b // 2
    p = legendre_table(b - 1, Grid(b).theta())  # (m, l, j), zero for l < m
    w = Grid(b).weights()
    one = torch.ones(b, dtype=torch.float64)
    m_ar = torch.arange(b)
    scale_f = torch.where(m_ar > 0, one * _SQRT2, one)  # √2 cos / √2 sin for m > 0
    scale_i = torch.where(m_ar > 0, one / _SQRT2, one)  # irfft counts m > 0 twice
    fwd = p * w * scale_f[:, None, None]
    fwd = torch.stack([fwd, -fwd])
    inv = (p * scale_i[:, None, None]).transpose(1, 2)  # (m, j, l)
    out = (fwd[:, :h], fwd[:, h:, h:], inv[:h], inv[h:, :, h:])
    return tuple(t.contiguous() for t in out)


# per bandwidth; ``(..., dtype=, device=)`` gives the copies a transform runs with
_index_tables = TableCache(_build_index_tables)
_tables = TableCache(_build_tables)


def _check_finite_fast(t: Tensor, name: str) -> None:
    # one sum is ~30× cheaper than isfinite().all(); only a non-finite sum needs the full scan
    if t.numel() and not bool(torch.isfinite(t.detach().sum())):
        check_finite(t, name)


def _check_transform(out: Tensor, inp: Tensor, name: str, op: str) -> None:
    """One test on the (smaller or equal) result stands for both: a NaN or inf in the input
    always reaches the result, and a finite input whose result is not finite overflowed."""
    if not out.numel() or bool(torch.isfinite(out.detach().sum())):
        return
    if bool(torch.isfinite(out.detach()).all()):
        return  # only the test sum overflowed
    check_finite(inp, name)
    peak = float(inp.detach().abs().amax())
    raise InvalidInputError(
        f"{op} of {name} overflows {inp.dtype} (max |{name}| = {peak:.3g}); scale {name} down "
        "or convert it to float64"
    )


def _check_dtype(t: Tensor, name: str) -> None:
    if t.dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"{name} must be float32 or float64, got {t.dtype}; convert it with .float()")


def _check_signal(signal: Tensor, bandwidth: int | None) -> int:
    b = grid_bandwidth(signal, bandwidth)
    check_floating(signal, "signal")
    _check_dtype(signal, "signal")
    return b


def sht(signal: Tensor, bandwidth: int | None = None, *, check: bool = True) -> Tensor:
    """Real spherical harmonic coefficients of grid signals.

    ``signal``: ``(..., 2B, 2B)`` on the Driscoll–Healy grid (``[..., θ_j, φ_k]``);
    ``bandwidth``: ``B`` (optional; checked against the grid when given).
    Returns ``(..., B²)`` with ``f̂[l·l + l + m] = ∫ f Y_{l,m} dΩ`` (exact for degree ``< B``
    signals); an empty batch gives an empty result. ``check=True`` refuses NaN/inf signals and
    signals whose coefficients overflow the dtype (one test of the result, one device sync);
    ``check=False`` skips it in hot loops.
    """
    b = _check_signal(signal, bandwidth)
    lead = signal.shape[:-2]
    if not signal.numel():
        return signal.new_zeros(*lead, b * b)
    x = signal.reshape(-1, 2 * b, 2 * b)
    fwd1, fwd2, _, _ = _tables(b, dtype=x.dtype, device=x.device)
    h = b // 2
    spec = torch.fft.rfft(x, dim=-1)[..., :b].transpose(1, 2)  # (N, B [m], 2B [j]) view
    n = x.shape[0]
    prods = []
    for part, t in ((spec.real, 0), (spec.imag, 1)):
        # one transpose per signal to (N, m, j); the matmul reads it as (m, j, N), no copy
        cols = part.contiguous().permute(1, 2, 0)
        prods.append((t, torch.matmul(fwd1[t], cols[:h]), torch.matmul(fwd2[t], cols[h:])))
    # flattened in the (c, m, l) order of the two groups
    prod = torch.cat([prods[0][1].reshape(-1, n), prods[1][1].reshape(-1, n),
                      prods[0][2].reshape(-1, n), prods[1][2].reshape(-1, n)])
    idx, _, _ = _index_tables(b, device=x.device)
    out = prod.index_select(0, idx).t().reshape(*lead, b * b)  # from (B², N)
    if check:
        _check_transform(out, signal, "signal", "sht")
    return out


def check_coeffs(coeffs: Tensor, bandwidth: int | None = None, check: bool = False) -> int:
    """The bandwidth ``B`` of real coefficients ``(..., B²)`` (float32 or float64), checked
    against ``bandwidth`` when given; with ``check`` also refuses NaN/inf values. Raises
    :class:`~equivision.errors.InvalidInputError` or :class:`~equivision.errors.ShapeError`."""
    if not isinstance(coeffs, Tensor):
        raise InvalidInputError(f"coeffs must be a torch tensor (..., B²), got {type(coeffs).__name__}")
    if coeffs.ndim < 1:
        raise ShapeError("coeffs must have shape (..., B²), got a scalar")
    check_floating(coeffs, "coeffs")
    _check_dtype(coeffs, "coeffs")
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
    """Grid signals ``(..., 2B, 2B)`` from real coefficients ``(..., B²)`` (inverse of :func:`sht`).

    From ``B = 24`` the result is a strided view (the inverse FFT runs along the batch-outer
    axis): use ``.reshape`` rather than ``.view`` on it, or ``.contiguous()`` first. An empty
    batch gives an empty result; ``check`` as in :func:`sht`."""
    b = check_coeffs(coeffs, bandwidth)
    lead = coeffs.shape[:-1]
    if not coeffs.numel():
        return coeffs.new_zeros(*lead, 2 * b, 2 * b)
    out = _isht(coeffs, b, lead)
    if check:
        _check_transform(out, coeffs, "coeffs", "isht")
    return out


def _isht(coeffs: Tensor, b: int, lead: torch.Size) -> Tensor:
    c = coeffs.reshape(-1, b * b)
    n = c.shape[0]
    _, _, inv1, inv2 = _tables(b, dtype=c.dtype, device=c.device)
    _, idx1, idx2 = _index_tables(b, device=c.device)
    # (m, l, N, [re, im]) so that each product comes out as complex (m, j, N), interleaved
    ct = c.t()
    prods = []
    for idx, inv in ((idx1, inv1), (idx2, inv2)):
        k, nl = inv.shape[0], inv.shape[2]
        g = ct.index_select(0, idx).reshape(2, k, nl, n)
        cols = torch.stack([g[0], g[1].neg()], dim=-1)  # the sine part enters as −Im
        prods.append(torch.matmul(inv, cols.reshape(k, nl, 2 * n)))  # (m, 2B [j], 2N)
    spec = torch.view_as_complex(torch.cat(prods).reshape(b, 2 * b, n, 2))  # (m, j, N)
    if b >= _OUTER_FFT_FROM:
        # the inverse FFT runs along the outer axis, so the spectrum is never transposed; the
        # result is a (N, j, k) view of the (k, j, N) output
        out = torch.fft.irfft(spec, n=2 * b, dim=0, norm="forward")
        return out.permute(2, 1, 0).reshape(*lead, 2 * b, 2 * b)
    out = torch.fft.irfft(spec.permute(2, 1, 0), n=2 * b, dim=-1, norm="forward")
    return out.reshape(*lead, 2 * b, 2 * b)
