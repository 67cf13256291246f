"""Orthonormal associated Legendre functions and real spherical harmonics.

Convention (fixed once for the whole library). For degree ``l`` and order ``|m| ≤ l``,

* ``P̄_l^m(θ) = sqrt((2l+1)/(4π) · (l−m)!/(l+m)!) · P_l^m(cos θ)`` with ``P_l^m`` the
  associated Legendre function **without** the Condon–Shortley phase ``(−1)^m``;
* real spherical harmonics, orthonormal on the unit sphere (``∫ Y_i Y_j dΩ = δ_ij``)::

      Y_{l,m}  = √2 P̄_l^m(θ) cos(m φ)      m > 0
      Y_{l,0}  =    P̄_l^0(θ)
      Y_{l,−m} = √2 P̄_l^m(θ) sin(m φ)      m > 0

  so that ``(Y_{1,−1}, Y_{1,0}, Y_{1,1}) = sqrt(3/(4π)) (y, z, x)``. In terms of SciPy's complex
  ``Y_l^m`` (which carry the Condon–Shortley phase): ``Y_{l,m} = √2 (−1)^m Re Y_l^m`` and
  ``Y_{l,−m} = √2 (−1)^m Im Y_l^m`` for ``m > 0``;
* coefficient vectors ``(..., B²)`` are ordered by ``index = l·l + l + m``
  (``l = 0 … B−1``, ``m = −l … l``).

``P̄`` is computed in float64 by the standard three-term recursion in ``l`` started from the
sectoral ``P̄_m^m``, which is evaluated in log space so that it underflows to an exact zero
(never to denormals) where it is below 1e-250.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from equivision._validation import check_finite
from equivision.errors import InvalidInputError

_TINY_LOG = math.log(1e-250)


def coeff_index(l: int, m: int) -> int:
    """Position of ``(l, m)`` in a real coefficient vector: ``l·l + l + m``."""
    if abs(m) > l:
        raise InvalidInputError(f"order m={m} out of range for degree l={l}")
    return l * l + l + m


def degree_order(bandwidth: int) -> tuple[Tensor, Tensor]:
    """``(l, m)`` of every coefficient index ``0 … B²−1``, each ``(B²,)`` int64."""
    ls = torch.cat([torch.full((2 * l + 1,), l) for l in range(bandwidth)])
    ms = torch.cat([torch.arange(-l, l + 1) for l in range(bandwidth)])
    return ls, ms


def legendre_table(l_max: int, theta: Tensor) -> Tensor:
    """``P̄_l^m(θ)`` for ``0 ≤ m ≤ l ≤ l_max``: tensor ``(l_max+1 [m], l_max+1 [l], *theta.shape)``,
    zero where ``m > l``. Computed in float64."""
    th = theta.to(torch.float64)
    x = torch.cos(th)
    L = l_max + 1
    m = torch.arange(L, dtype=torch.float64, device=th.device)
    # log P̄_m^m = ½ log((2m+1)/4π) + ½ log((2m)!) − m log 2 − log m! + m log|sin θ|
    log_pmm = (0.5 * torch.log((2 * m + 1) / (4 * math.pi)) + 0.5 * torch.lgamma(2 * m + 1)
               - m * math.log(2.0) - torch.lgamma(m + 1))
    shape = (L,) + (1,) * th.ndim
    log_pmm = log_pmm.reshape(shape) + torch.xlogy(m.reshape(shape), torch.sin(th).abs())
    sign = torch.where((torch.sin(th) < 0) & (m.reshape(shape) % 2 == 1), -1.0, 1.0)
    pmm = torch.where(log_pmm > _TINY_LOG, sign * torch.exp(log_pmm), torch.zeros_like(log_pmm))
    out = torch.zeros((L, L, *th.shape), dtype=torch.float64, device=th.device)
    prev2 = torch.zeros_like(pmm)  # P̄_{l−2}^m
    prev1 = torch.zeros_like(pmm)  # P̄_{l−1}^m
    for l in range(L):
        if l == 0:
            cur = pmm.clone()
            cur[1:] = 0
        else:
            # a = sqrt((4l²−1)/(l²−m²)), b = sqrt(((l−1)²−m²)/(4(l−1)²−1)) for m < l
            mm = m[:l].reshape((l,) + (1,) * th.ndim)
            a = torch.sqrt((4.0 * l * l - 1) / (l * l - mm * mm))
            b = torch.sqrt(((l - 1.0) ** 2 - mm * mm).clamp_min(0) / (4.0 * (l - 1) ** 2 - 1))
            cur = torch.zeros_like(pmm)
            cur[:l] = a * (x * prev1[:l] - b * prev2[:l])
            cur[l] = pmm[l]
        out[:, l] = cur
        prev2, prev1 = prev1, cur
    return out


def real_sph_harm(l_max: int, theta: Tensor, phi: Tensor) -> Tensor:
    """Real orthonormal spherical harmonics ``Y_{l,m}(θ, φ)`` for ``l ≤ l_max``.

    ``theta`` (colatitude) and ``phi`` (azimuth) broadcast to a common shape ``S``; returns
    ``(*S, (l_max+1)²)`` in the coefficient order ``l·l + l + m``, in the dtype of ``theta``
    (computed in float64).
    """
    if l_max < 0 or int(l_max) != l_max:
        raise InvalidInputError(f"l_max must be a non-negative integer, got {l_max}")
    theta, phi = torch.broadcast_tensors(torch.as_tensor(theta), torch.as_tensor(phi))
    check_finite(theta, "theta")
    check_finite(phi, "phi")
    out_dtype = theta.dtype if theta.is_floating_point() else torch.get_default_dtype()
    p = legendre_table(int(l_max), theta)  # (m, l, *S)
    ph = phi.to(torch.float64)
    cols = []
    for l in range(int(l_max) + 1):
        for m in range(-l, l + 1):
            if m == 0:
                cols.append(p[0, l])
            elif m > 0:
                cols.append(math.sqrt(2) * p[m, l] * torch.cos(m * ph))
            else:
                cols.append(math.sqrt(2) * p[-m, l] * torch.sin(-m * ph))
    return torch.stack(cols, dim=-1).to(out_dtype)


def real_sph_harm_points(l_max: int, points: Tensor) -> Tensor:
    """Real spherical harmonics at unit vectors ``(..., 3)`` (normalised here) → ``(..., (l_max+1)²)``."""
    from equivision._validation import check_points
    from equivision.sphere.grid import points_to_angles

    check_points(points, "points", 3)
    n = points.norm(dim=-1, keepdim=True)
    if bool((n < 1e-12).any()):
        raise InvalidInputError("points contain a zero vector, which has no direction on the sphere")
    theta, phi = points_to_angles(points / n)
    return real_sph_harm(l_max, theta, phi)
