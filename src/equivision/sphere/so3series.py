"""The band-limited SO(3) correlation as a 3-D Fourier series in the Euler angles.

With ``Δ^l = d^l(π/2)`` every Wigner small-d is a trigonometric polynomial in β,
``d^l_mn(β) = i^{n−m} Σ_k Δ^l_km Δ^l_kn e^{ikβ}`` (``|k| ≤ l``), so the correlation of a
cross-spectrum ``h`` (see :mod:`equivision.sphere.so3fft`) is

    ``C(α, β, γ) = Re Σ_{m, n ≥ 0, k} T_mnk e^{−imα} e^{ikβ} e^{−inγ}``,
    ``T_mnk = w_n i^{n−m} Σ_l h^l_mn Δ^l_km Δ^l_kn`` (``w_n = 2`` for ``n > 0``: it stands for ``±n``).

``T`` is built once per pair (one batched matrix product over ``l``); after that ``C`` at any
rotation is one small contraction, with no recursion over the degrees. That is what the
Newton refinement of :func:`~equivision.sphere.pose.relative_pose` evaluates dozens of times
per pair; :func:`~equivision.sphere.so3fft.correlation_at` (the recursion at each β) is the
reference it is tested against. The table ``Δ^l_km Δ^l_kn`` holds ``≈ 4 L⁴`` float64 numbers
(2 MB at ``L = 16``, 32 MB at ``L = 32``), so the series is used only up to
:data:`MAX_SERIES_BANDWIDTH`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision.groups.spatial import SO3
from equivision.sphere.cache import TableCache
from equivision.sphere.wigner import wigner_d_iter

MAX_SERIES_BANDWIDTH = 32


def _build_series_table(L: int) -> tuple[Tensor, Tensor]:
    """``E (2L−1 [m] · L [n], L [l], 2L−1 [k])`` real with ``E[mn, l, k] = Δ^l_km Δ^l_kn`` (zero
    where ``max(|m|, |n|, |k|) > l``), and the phases ``w_n i^{n−m}`` ``(2L−1, L)`` complex."""
    mw = 2 * L - 1
    delta = torch.zeros(L, mw, mw, dtype=torch.float64)  # [l, k + L − 1, m + L − 1]
    for l, d in enumerate(wigner_d_iter(L - 1, torch.tensor(math.pi / 2, dtype=torch.float64))):
        delta[l] = d  # d^l_km at β = π/2, zero outside |k|, |m| ≤ l
    half = delta[:, :, L - 1:]  # n ≥ 0
    e = delta[:, :, :, None] * half[:, :, None, :]  # (l, k, m, n)
    e = e.permute(2, 3, 0, 1).reshape(mw * L, L, mw).contiguous()
    m = torch.arange(-(L - 1), L)[:, None]
    n = torch.arange(L)[None, :]
    phase = torch.tensor(1j, dtype=torch.complex128) ** torch.remainder(n - m, 4).to(torch.float64)
    phase = phase * torch.where(n > 0, 2.0, 1.0).to(torch.complex128)
    return e, phase


_series_table = TableCache(_build_series_table, maxsize=2)


def correlation_series(h: Tensor) -> Tensor:
    """The series coefficients ``T (N, 2L−1 [m], L [n ≥ 0], 2L−1 [k])`` complex128 of
    cross-spectra ``h (N, L, 2L−1, L)``."""
    n_pairs, L = h.shape[0], h.shape[1]
    mw = 2 * L - 1
    e, phase = _series_table(L, device=h.device)
    h = h.to(torch.complex128)
    cols = torch.cat([h.real, h.imag], 0).reshape(2 * n_pairs, L, mw * L).permute(2, 0, 1)  # (mn, 2N, l)
    t = torch.bmm(cols, e)  # (mn, 2N, k)
    t = torch.complex(t[:, :n_pairs], t[:, n_pairs:]).reshape(mw, L, n_pairs, mw).permute(2, 0, 1, 3)
    return t * phase[..., None]


def series_at(t: Tensor, rotation: Tensor) -> Tensor:
    """``C`` of series ``T (N, 2L−1, L, 2L−1)`` at rotations ``(N, P, 3, 3)`` → ``(N, P)`` float64
    (the rotations are assumed valid: the refinement builds them)."""
    n_pairs, mw, L, _ = t.shape
    al, be, ga = SO3.to_euler_zyz(rotation.to(torch.float64), check=False)  # (N, P)
    m = torch.arange(-(L - 1), L, dtype=torch.float64, device=t.device)
    n = torch.arange(L, dtype=torch.float64, device=t.device)
    ea = torch.polar(torch.ones_like(al)[..., None], -m * al[..., None])  # (N, P, M)
    eb = torch.polar(torch.ones_like(be)[..., None], m * be[..., None])  # (N, P, K)
    eg = torch.polar(torch.ones_like(ga)[..., None], -n * ga[..., None])  # (N, P, Ln)
    x = torch.bmm(ea, t.reshape(n_pairs, mw, L * mw)).reshape(*al.shape, L, mw)  # (N, P, Ln, K)
    x = torch.bmm(x.reshape(-1, L, mw), eb.reshape(-1, mw, 1)).reshape(*al.shape, L)  # (N, P, Ln)
    return (x * eg).sum(-1).real
