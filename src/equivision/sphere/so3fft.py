"""SO(3) correlation of spherical signals by an inverse SO(3) Fourier transform.

For multi-channel signals ``f, g`` the correlation ``C(R) = Σ_c ∫ f_c(x) g_c(R⁻¹x) dx`` is,
in complex coefficients, ``Σ_l Σ_mn h^l_mn D^l_mn(R)`` with ``h^l_mn = Σ_c conj(f̂^l_cm) ĝ^l_cn``
and ``D^l_mn(α, β, γ) = e^{−imα} d^l_mn(β) e^{−inγ}`` (ZYZ Euler angles, ``R = Rz(α) Ry(β) Rz(γ)``).
It is evaluated on the ``(2B)³`` Euler grid

* ``α_a = 2π a / (2B)``, ``β_j = π (2j + 1) / (4B)`` (the Driscoll–Healy colatitudes),
  ``γ_b = 2π b / (2B)``, indexed ``[a, j, b]``,

by contracting ``h`` with Wigner-d over ``l`` for every ``(m, n, β_j)`` and an inverse 2D real
FFT over ``(α, γ)``; nothing tries rotations one at a time. Three symmetries cut the work:
real signals make ``S_{−m,−n} = conj(S_mn)`` (only ``n ≥ 0`` is computed), the Wigner-d table
is stored for ``β < π/2`` only (``d^l_mn(π−β) = (−1)^{l+n} d^l_{−m,n}(β)``), and it is stored
per shell ``max(|m|, |n|) = k`` for the degrees ``l ≥ k`` that exist. The table is built once
per ``(B, grid B)`` in float64 on the CPU and cached, with its copies per dtype and device.

``out_bandwidth > B`` evaluates the same band-limited correlation on a finer ``(2B')³`` grid:
the exact (spectral) version of the paper's upsampling of the inputs before correlating.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.groups.spatial import SO3, check_rotation_matrix
from equivision.sphere.basis import complex_coeff_gathers
from equivision.sphere.cache import TableCache
from equivision.sphere.grid import check_bandwidth, grid_bandwidth
from equivision.sphere.sht import check_coeffs, sht
from equivision.sphere.wigner import wigner_d_iter


# ----- the Euler grid and SO3 ------------------------------------------------------------------
def so3_grid_angles(bandwidth: int, *, dtype: torch.dtype = torch.float64,
                    device=None) -> tuple[Tensor, Tensor, Tensor]:
    """The 1-D ZYZ angle grids ``α (2B,)``, ``β (2B,)``, ``γ (2B,)`` of the SO(3) grid."""
    b = check_bandwidth(bandwidth)
    k = torch.arange(2 * b, dtype=dtype, device=device)
    return 2 * math.pi * k / (2 * b), math.pi * (2 * k + 1) / (4 * b), 2 * math.pi * k / (2 * b)


def so3_grid_rotations(bandwidth: int, *, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """Rotation matrices of the whole grid ``(2B, 2B, 2B, 3, 3)`` indexed ``[a, j, b]``, as
    :class:`equivision.groups.SO3` elements (``Rz(α_a) Ry(β_j) Rz(γ_b)``)."""
    a, bt, g = so3_grid_angles(bandwidth, dtype=dtype, device=device)
    aa, bb, gg = torch.meshgrid(a, bt, g, indexing="ij")
    return SO3.from_euler_zyz(aa, bb, gg)


def so3_grid_to_rotation(index: Tensor, bandwidth: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """Grid indices ``(..., 3)`` ``[a, j, b]`` to rotation matrices ``(..., 3, 3)``
    (see :func:`unravel_so3_index` for flat indices into the ``(2B)³`` grid)."""
    b = check_bandwidth(bandwidth)
    index = torch.as_tensor(index)
    if index.is_floating_point():
        raise InvalidInputError("grid indices must be integers")
    n = 2 * b
    if index.ndim == 0 or index.shape[-1] != 3:
        raise InvalidInputError(f"grid indices must have shape (..., 3) [a, j, b], got {tuple(index.shape)}")
    if bool(((index < 0) | (index >= n)).any()):
        raise InvalidInputError(f"grid indices must lie in [0, {n}) for bandwidth {b}")
    a = 2 * math.pi * index[..., 0].to(dtype) / n
    bt = math.pi * (2 * index[..., 1].to(dtype) + 1) / (2 * n)
    g = 2 * math.pi * index[..., 2].to(dtype) / n
    return SO3.from_euler_zyz(a, bt, g)


def unravel_so3_index(flat: Tensor, bandwidth: int) -> Tensor:
    """Flat indices ``(...,)`` into a ``(2B, 2B, 2B)`` grid to ``(..., 3)`` ``[a, j, b]``."""
    n = 2 * check_bandwidth(bandwidth)
    flat = torch.as_tensor(flat)
    return torch.stack([flat // (n * n), (flat // n) % n, flat % n], dim=-1)


def rotation_to_so3_grid(rotation: Tensor, bandwidth: int) -> Tensor:
    """The nearest grid indices ``(..., 3)`` ``[a, j, b]`` to rotations ``(..., 3, 3)`` (nearest in
    geodesic angle among the grid points around the rotation's own Euler angles)."""
    b = check_bandwidth(bandwidth)
    check_rotation_matrix(rotation)
    r = rotation.to(torch.float64)
    al, be, ga = SO3.to_euler_zyz(r, check=False)  # checked above in its own dtype
    n = 2 * b
    step = 2 * math.pi / n
    # candidate cells around the continuous index, then the geodesically closest
    fa = torch.floor(torch.remainder(al, 2 * math.pi) / step)
    fb = torch.floor(be * n / math.pi - 0.5)
    fg = torch.floor(torch.remainder(ga, 2 * math.pi) / step)
    offs = torch.tensor([(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)],
                        dtype=torch.float64, device=r.device)
    cand = torch.stack([fa, fb, fg], -1)[..., None, :] + offs  # (..., 8, 3)
    ia = torch.remainder(cand[..., 0], n)
    ib = cand[..., 1].clamp(0, n - 1)
    ig = torch.remainder(cand[..., 2], n)
    idx = torch.stack([ia, ib, ig], -1).long()
    rc = so3_grid_to_rotation(idx, b)
    dist = SO3.geodesic_distance(rc, r[..., None, :, :], check=False)
    best = dist.argmin(dim=-1)
    return torch.gather(idx, -2, best[..., None, None].expand(*best.shape, 1, 3))[..., 0, :]


# ----- complex coefficients --------------------------------------------------------------------
def complex_coeffs(coeffs: Tensor) -> Tensor:
    """Complex spherical harmonic coefficients (Condon–Shortley ``Y_l^m``) of real-coefficient
    signals ``(..., B²)``, in the padded layout ``(..., B [l], 2B−1 [m + B − 1])``."""
    b = check_coeffs(coeffs, None, False)
    ip, i_n, wr, wi = complex_coeff_gathers(b, dtype=coeffs.dtype, device=coeffs.device)
    pad = torch.cat([coeffs, coeffs.new_zeros(*coeffs.shape[:-1], 1)], dim=-1)
    shape = (*coeffs.shape[:-1], b, 2 * b - 1)
    re = pad.index_select(-1, ip).reshape(shape) * wr
    im = pad.index_select(-1, i_n).reshape(shape) * wi
    return torch.complex(re, im)


def _cross_spectrum(fc: Tensor, gc: Tensor) -> Tensor:
    """``h^l_mn = Σ_c conj(f^l_cm) g^l_cn`` for ``n ≥ 0``: ``(..., L, 2L−1 [m], L [n])``."""
    L = fc.shape[-2]
    g_half = gc[..., L - 1:]  # n ≥ 0
    # (..., C, L, M) → (..., L, M, C) @ (..., L, C, n)
    return torch.matmul(fc.conj().movedim(-3, -1), g_half.movedim(-3, -2))


# ----- the Wigner-d table on the half β grid ---------------------------------------------------
def _build_shell_layout(L: int) -> tuple[Tensor, list[int]]:
    """Entries ``(m, n ≥ 0)`` of the ``(2L−1) × L`` half layout sorted by shell ``k = max(|m|, n)``:
    the permutation (flat indices ``(m + L − 1)·L + n``) and the shell offsets."""
    m = torch.arange(-(L - 1), L)[:, None].expand(2 * L - 1, L)
    n = torch.arange(L)[None, :].expand(2 * L - 1, L)
    k = torch.maximum(m.abs(), n).reshape(-1)
    perm = torch.argsort(k * (4 * L * L) + torch.arange(k.numel()), stable=True)
    counts = torch.bincount(k, minlength=L).tolist()
    offs = [0]
    for c in counts:
        offs.append(offs[-1] + c)
    return perm, offs


def _build_d_table(L: int, grid_b: int) -> tuple[Tensor, ...]:
    """Per shell ``k``: ``d^l_mn(β_j)`` as ``(E_k, B_grid [j < B_grid], L − k [l = k … L−1])``."""
    beta = math.pi * (2 * torch.arange(grid_b, dtype=torch.float64) + 1) / (4 * grid_b)  # β < π/2
    perm, offs = _build_shell_layout(L)
    tabs = [torch.zeros(offs[k + 1] - offs[k], grid_b, L - k, dtype=torch.float64) for k in range(L)]
    lmax = L - 1
    for l, d in enumerate(wigner_d_iter(lmax, beta, half=True)):
        flat = d.reshape(grid_b, -1)[:, perm]  # (j, E) in shell order
        for k in range(l + 1):
            tabs[k][:, :, l - k] = flat[:, offs[k]:offs[k + 1]].t()
    return tuple(tabs)


_shell_layout = TableCache(_build_shell_layout, maxsize=16)
_d_table = TableCache(_build_d_table, maxsize=8)


def _spectral_grid(h: Tensor, grid_b: int) -> Tensor:
    """``S(β_j)_mn = Σ_l h^l_mn d^l_mn(β_j)`` for the full β grid: ``(N, 2B', 2L−1, L)`` complex,
    from ``h (N, L, 2L−1, L)``."""
    n_pairs, L = h.shape[0], h.shape[1]
    mw = 2 * L - 1
    rtype = h.real.dtype
    tabs = _d_table(L, grid_b, dtype=rtype, device=h.device)
    perm, offs = _shell_layout(L, device=h.device)
    lsign = (1.0 - 2.0 * (torch.arange(L, device=h.device) % 2)).to(rtype)  # (−1)^l
    nsign = (1.0 - 2.0 * (torch.arange(L, device=h.device) % 2)).to(rtype)  # (−1)^n
    # h2^l_{m,n} = (−1)^{l+n} h^l_{−m,n} serves β > π/2
    h2 = h.flip(-2) * lsign[:, None, None] * nsign
    cols = torch.stack([h.real, h.imag, h2.real, h2.imag], dim=1)  # (N, 4, L, M, Ln)
    cols = cols.reshape(n_pairs * 4, L, mw * L).index_select(2, perm)  # shell order
    cols = cols.permute(2, 1, 0)  # (E, L, 4N)
    outs = []
    for k in range(L):
        hk = cols[offs[k]:offs[k + 1], k:]
        outs.append(torch.bmm(tabs[k], hk))  # (E_k, J, 4N)
    s = torch.cat(outs, 0)  # (E, J, 4N) in shell order
    s = torch.empty_like(s).index_copy_(0, perm, s)  # back to (m, n) order
    s = s.reshape(mw, L, grid_b, n_pairs, 4).permute(3, 4, 2, 0, 1)  # (N, 4, J, M, Ln)
    s1 = torch.complex(s[:, 0], s[:, 1])
    s2 = torch.complex(s[:, 2], s[:, 3]).flip(-2).flip(-3)  # at (−m, n), j → 2B'−1−j
    return torch.cat([s1, s2], dim=1)


def _grid_from_spectrum(s: Tensor, grid_b: int) -> Tensor:
    """``C[a, j, b] = Σ_mn S(β_j)_mn e^{−i(mα_a + nγ_b)}`` from ``S (N, 2B', 2L−1, L)`` (n ≥ 0)."""
    n_pairs, nj, _, L = s.shape
    n = 2 * grid_b
    x = s.new_zeros(n_pairs, nj, n, grid_b + 1)
    x[..., :L, :L] = s[..., L - 1:, :].conj()
    if L > 1:
        x[..., n - (L - 1):, :L] = s[..., :L - 1, :].conj()
    c = torch.fft.irfft2(x, s=(n, n), dim=(-2, -1), norm="forward")  # (N, j, a, b)
    return c.permute(0, 2, 1, 3)


def pair_coeffs(f: Tensor, g: Tensor, bandwidth: int | None = None, name_f: str = "f",
                name_g: str = "g") -> tuple[Tensor, Tensor, int]:
    """The real coefficients ``(..., C, B²)`` of two signals to correlate, ``f, g``
    ``(..., C, 2B, 2B)``, and ``B``, after checking that they can be: the same bandwidth
    (``bandwidth`` when given), a channel axis, as many channels, the same dtype. Raises
    :class:`~equivision.errors.ShapeError` or :class:`~equivision.errors.InvalidInputError`
    naming them ``name_f`` and ``name_g``."""
    bf = grid_bandwidth(f, bandwidth, name_f)
    bg = grid_bandwidth(g, bandwidth, name_g)
    if bf != bg:
        raise ShapeError(f"{name_f} and {name_g} have different bandwidths ({bf} and {bg})")
    if f.ndim < 3 or g.ndim < 3:
        raise ShapeError(
            f"{name_f} and {name_g} must have shape (..., C, 2B, 2B) (add a channel axis of size 1), "
            f"got {tuple(f.shape)} and {tuple(g.shape)}"
        )
    if f.shape[-3] != g.shape[-3]:
        raise ShapeError(f"{name_f} has {f.shape[-3]} channels but {name_g} has {g.shape[-3]}")
    if f.dtype != g.dtype:
        raise InvalidInputError(
            f"{name_f} and {name_g} must have the same dtype, got {f.dtype} and {g.dtype}"
        )
    return sht(f), sht(g), bf


def cross_spectrum(f_coeffs: Tensor, g_coeffs: Tensor) -> Tensor:
    """``h^l_mn = Σ_c conj(f̂^l_cm) ĝ^l_cn`` (``n ≥ 0``) from real coefficients ``(..., C, B²)``:
    ``(..., B, 2B−1, B)`` complex; the input of :func:`so3_correlation_from_spectrum`."""
    return _cross_spectrum(complex_coeffs(f_coeffs), complex_coeffs(g_coeffs))


def so3_correlation_from_spectrum(h: Tensor, out_bandwidth: int) -> Tensor:
    """The SO(3) grid ``(..., 2B', 2B', 2B')`` of a cross-spectrum ``h (..., L, 2L−1, L)``."""
    lead = h.shape[:-3]
    L = h.shape[-3]
    if out_bandwidth < L:
        raise InvalidInputError(f"out_bandwidth ({out_bandwidth}) must be at least the bandwidth ({L})")
    hf = h.reshape(-1, *h.shape[-3:])
    c = _grid_from_spectrum(_spectral_grid(hf, out_bandwidth), out_bandwidth)
    n = 2 * out_bandwidth
    return c.reshape(*lead, n, n, n)


def so3_correlation(f: Tensor, g: Tensor, bandwidth: int | None = None, *,
                    out_bandwidth: int | None = None) -> Tensor:
    """``C(R) = Σ_c ∫ f_c(x) g_c(R⁻¹x) dx`` on the SO(3) Euler grid.

    ``f, g``: ``(..., C, 2B, 2B)`` grid signals (leading dimensions broadcast); returns
    ``(..., 2B', 2B', 2B')`` indexed ``[α_a, β_j, γ_b]`` (see :func:`so3_grid_angles`,
    :func:`so3_grid_to_rotation`), with ``B' = out_bandwidth`` (default ``B``; larger values
    sample the same band-limited correlation more finely). Differentiable.
    """
    fh, gh, b = pair_coeffs(f, g, bandwidth)
    ob = b if out_bandwidth is None else check_bandwidth(out_bandwidth, "out_bandwidth")
    h = cross_spectrum(fh, gh)
    return so3_correlation_from_spectrum(h, ob)


def correlation_at(h: Tensor, rotation: Tensor) -> Tensor:
    """The correlation of cross-spectra ``h (..., L, 2L−1, L)`` at arbitrary rotations
    ``(..., P, 3, 3)`` → ``(..., P)`` (exact, no grid), by the Wigner-d recursion at each β."""
    L = h.shape[-3]
    check_rotation_matrix(rotation)
    al, be, ga = SO3.to_euler_zyz(rotation.to(torch.float64), check=False)
    rtype = h.real.dtype
    h_re = h.real[..., None, :, :, :]  # (..., 1, L, M, Ln)
    h_im = h.imag[..., None, :, :, :]
    shape = torch.broadcast_shapes(h_re.shape[:-3], be.shape) + h.shape[-2:]
    acc_re = h.new_zeros(shape, dtype=rtype)
    acc_im = h.new_zeros(shape, dtype=rtype)
    for l, d in enumerate(wigner_d_iter(L - 1, be, half=True)):
        rs, cs = slice(L - 1 - l, L + l), slice(0, l + 1)  # d^l is zero elsewhere
        dl = d[..., rs, cs].to(rtype)
        acc_re[..., rs, cs].addcmul_(h_re[..., l, rs, cs], dl)
        acc_im[..., rs, cs].addcmul_(h_im[..., l, rs, cs], dl)
    s = torch.complex(acc_re, acc_im)  # (..., P, M, Ln)
    m = torch.arange(-(L - 1), L, device=h.device, dtype=torch.float64)
    n = torch.arange(L, device=h.device, dtype=torch.float64)
    ea = torch.exp(-1j * m * al[..., None]).to(s.dtype)
    eg = torch.exp(-1j * n * ga[..., None]).to(s.dtype)
    wn = torch.where(n > 0, 2.0, 1.0).to(rtype)  # n > 0 stands for ±n
    val = torch.einsum("...m,...mn,...n->...", ea, s, eg * wn)
    return val.real
