"""The rotation that best aligns two multi-channel spherical signals.

``align(f, g)`` maximises ``C(R) = Σ_c ∫ f_c(x) g_c(R⁻¹x) dx``: the returned ``R`` is the
rotation with ``rotate(g, R) ≈ f``. It takes the best point of the SO(3) grid correlation
(:func:`~equivision.sphere.so3fft.so3_correlation`), then (``refine=True``) climbs the exact
band-limited correlation below the grid spacing: a few Newton steps on quadratic fits of
``C(R_c exp(ω̂))`` over a 10-point stencil in the tangent space ``ω ∈ R³``, with a stencil
that shrinks 4× per step, evaluated exactly by the Wigner-d recursion at arbitrary rotations.

The result unpacks as the pair ``(R, score)`` and also says how well ``R`` is determined:
``contrast`` is the RMS variation of ``C`` over SO(3) relative to its bound ``‖f‖ ‖g‖``
(Cauchy–Schwarz), and ``ambiguous`` flags pairs whose correlation is constant to rounding
(zero or constant signals): there every rotation is a maximiser and ``R`` is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from equivision.sphere.grid import check_bandwidth
from equivision.sphere.so3fft import (
    correlation_at,
    cross_spectrum,
    pair_coeffs,
    so3_correlation_from_spectrum,
    so3_grid_to_rotation,
    unravel_so3_index,
)


class AlignResult(tuple):
    """``(rotation (..., 3, 3), score (...,))``, unpacked like a pair, with two more fields:

    * ``contrast`` ``(...,)`` float64 in ``[0, 1]``: ``‖C − mean C‖ / (‖f‖ ‖g‖)`` (``L²`` over
      SO(3) with unit Haar measure; 0 when a signal is zero): how much the correlation varies;
    * ``ambiguous`` ``(...,)`` bool: ``contrast`` is below ``100 eps`` of the inputs' dtype, so
      every rotation maximises the correlation to rounding and ``rotation`` is the identity.
    """

    def __new__(cls, rotation: Tensor, score: Tensor, contrast: Tensor, ambiguous: Tensor) -> AlignResult:
        self = super().__new__(cls, (rotation, score))
        self.contrast = contrast
        self.ambiguous = ambiguous
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickling passes the extra fields to __new__
        return (self[0], self[1], self.contrast, self.ambiguous)

    @property
    def rotation(self) -> Tensor:
        return self[0]

    @property
    def score(self) -> Tensor:
        return self[1]

    def __repr__(self) -> str:
        return (f"AlignResult(rotation={self[0]!r}, score={self[1]!r}, contrast={self.contrast!r}, "
                f"ambiguous={self.ambiguous!r})")


def _contrast(fh: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """``‖C − mean C‖_{L²(SO3)} / (‖f‖ ‖g‖)`` per pair ``(N,)`` from coefficients ``(N, C, B²)``
    and the cross-spectrum ``h (N, L, 2L−1, L)`` (``n ≥ 0``): by Peter–Weyl the variation is
    ``Σ_{l ≥ 1} ‖h^l‖²_F / (2l + 1)`` over all ``(m, n)``, and ``|h_{−m,−n}| = |h_mn|``."""
    L = h.shape[-3]
    l_w = 1.0 / (2 * torch.arange(L, dtype=torch.float64, device=h.device) + 1)
    l_w[0] = 0.0  # the l = 0 term is the mean
    n_w = torch.full((L,), 2.0, dtype=torch.float64, device=h.device)
    n_w[0] = 1.0
    power = (h.abs().to(torch.float64) ** 2 * n_w).sum(dim=(-2, -1))  # (N, L)
    spread = (power * l_w).sum(-1).sqrt()
    bound = fh.to(torch.float64).flatten(1).norm(dim=-1) * gh.to(torch.float64).flatten(1).norm(dim=-1)
    return torch.where(bound > 0, spread / bound.clamp_min(1e-300), torch.zeros_like(spread))


@lru_cache(maxsize=4)
def _levi_civita(device: torch.device) -> Tensor:
    """``L (3, 9)`` with ``L[k, 3i + j] = ε_ijk``: ``−u @ L`` is the cross-product matrix of ``u``."""
    e = torch.zeros(3, 3, 3, dtype=torch.float64)
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        e[i, j, k], e[j, i, k] = 1.0, -1.0
    return e.permute(2, 0, 1).reshape(3, 9).to(device)


def _expmap(v: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` of rotation vectors ``(..., 3)`` float64, from the unit
    quaternion ``(cos θ/2, sin(θ/2) v/θ)``: no branch for small angles (``sinc``), and fewer
    operations than the general conversion, which the climb calls twice per step."""
    theta = v.norm(dim=-1, keepdim=True)
    u = v * (0.5 * torch.sinc(theta / (2 * math.pi)))  # sin(θ/2) v / θ
    w = torch.cos(0.5 * theta)[..., None]
    cross = -(u @ _levi_civita(v.device)).reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    outer = u[..., :, None] * u[..., None, :]
    return (w * w - (u * u).sum(-1)[..., None, None]) * eye + 2 * outer + 2 * w * cross


@lru_cache(maxsize=1)
def _stencil() -> tuple[Tensor, Tensor]:
    """Unit stencil ``(10, 3)`` (centre, ``±e_i``, ``e_i + e_j``) and the map ``(10, 10)`` from
    its values to the quadratic ``c + gᵀω + ½ ωᵀHω``: ``[c, g (3), Hxx, Hyy, Hzz, Hxy, Hxz, Hyz]``."""
    pts = [(0.0, 0.0, 0.0)]
    for i in range(3):
        for s in (-1.0, 1.0):
            p = [0.0, 0.0, 0.0]
            p[i] = s
            pts.append(tuple(p))
    for i, j in ((0, 1), (0, 2), (1, 2)):
        p = [0.0, 0.0, 0.0]
        p[i], p[j] = 1.0, 1.0
        pts.append(tuple(p))
    w = torch.tensor(pts, dtype=torch.float64)
    x, y, z = w.unbind(-1)
    design = torch.stack([torch.ones_like(x), x, y, z, 0.5 * x * x, 0.5 * y * y, 0.5 * z * z,
                          x * y, x * z, y * z], -1)
    return w, torch.linalg.pinv(design)


def _refine(h: Tensor, r0: Tensor, spacing: float, steps: int = 6, tol: float = 1e-4,
            evaluate: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Newton refinement of ``C`` from rotations ``r0 (N, 3, 3)``; returns ``(R, C(R))``.

    ``evaluate`` maps rotations ``(N, P, 3, 3)`` to ``C`` ``(N, P)`` float64; by default the
    Wigner-d recursion of :func:`~equivision.sphere.so3fft.correlation_at` on ``h``.

    Each step evaluates the stencil around the current centre (the centre included, which
    also checks the previous step), fits the quadratic and moves to its maximum: Newton along
    the directions where the fit is concave, a gradient step along the others, inside a trust
    region of twice the stencil size. The stencil then shrinks 2× to 8× (following the step
    length; 4× after a rejected step); it stops once every step is below ``tol`` rad.
    """
    if evaluate is None:
        def evaluate(r: Tensor) -> Tensor:
            return correlation_at(h, r)
    w, fit = _stencil()
    w, fit = w.to(h.device), fit.to(h.device)
    n_pairs = r0.shape[0]
    best_r = r0
    best_c = torch.full((n_pairs,), -torch.inf, dtype=torch.float64, device=h.device)
    center = r0
    delta = 0.5 * spacing
    it = -1
    while it < steps:
        it += 1
        if it == steps:  # the last Newton step only needs its own value
            vals = evaluate(center[:, None])
            rots = center[:, None]
        else:
            rots = center[:, None] @ _expmap(w * delta)[None]  # (N, 10, 3, 3)
            vals = evaluate(rots)  # (N, 10)
        # the previous step is rejected if it made the centre worse than the best point so far
        center_ok = vals[:, 0] >= best_c
        i_best = vals.argmax(-1)
        c_pts = vals.gather(-1, i_best[:, None])[:, 0]
        better = c_pts > best_c
        pick = rots[torch.arange(n_pairs, device=rots.device), i_best]
        best_r = torch.where(better[:, None, None], pick, best_r)
        best_c = torch.where(better, c_pts, best_c)
        if it == steps:
            break
        coef = vals @ fit.t()  # (N, 10), in units of δ
        g = coef[:, 1:4] / delta
        hd = coef[:, 4:7] / delta**2
        ho = coef[:, 7:10] / delta**2
        hess = torch.stack([torch.stack([hd[:, 0], ho[:, 0], ho[:, 1]], -1),
                            torch.stack([ho[:, 0], hd[:, 1], ho[:, 2]], -1),
                            torch.stack([ho[:, 1], ho[:, 2], hd[:, 2]], -1)], -2)
        # Newton along the directions where the fit is concave; a gradient step of the stencil
        # size along the others (far from the peak, or the flat directions of a symmetric signal)
        lam, vec = torch.linalg.eigh(hess)
        gp = (vec.transpose(-1, -2) @ g[..., None])[..., 0]
        eps = 1e-6 * hess.flatten(-2).norm(dim=-1, keepdim=True)
        concave = lam < -eps
        grad_part = gp / g.norm(dim=-1, keepdim=True).clamp_min(1e-300) * delta
        sp = torch.where(concave, -gp / torch.where(concave, lam, -torch.ones_like(lam)), grad_part)
        step = (vec @ sp[..., None])[..., 0]
        n = step.norm(dim=-1, keepdim=True)
        step = torch.where(n > 2 * delta, step * (2 * delta / n.clamp_min(1e-300)), step)
        n = step.norm(dim=-1, keepdim=True)
        moved = center @ _expmap(step)
        center = torch.where(center_ok[:, None, None], moved, best_r)  # else restart at the best
        # a rejected step shrinks the stencil 4×
        longest = float(torch.where(center_ok, n[:, 0], torch.full_like(n[:, 0], delta / 4)).max())
        if longest < tol:
            steps = it + 1  # one last evaluation at the final centre
        delta = max(min(delta / 2, longest), delta / 8, 1e-3 * spacing)
    return best_r, best_c


def align(f: Tensor, g: Tensor, bandwidth: int | None = None, *, refine: bool = True,
          out_bandwidth: int | None = None) -> AlignResult:
    """Best rotation between signals ``f, g`` ``(..., C, 2B, 2B)`` (leading dimensions broadcast).

    Returns ``(R (..., 3, 3), score (...,))`` with ``R`` maximising
    ``Σ_c ∫ f_c(x) g_c(R⁻¹x) dx`` (so ``rotate(g, R) ≈ f``) and ``score`` that maximum. ``R`` is
    an :class:`equivision.groups.SO3` element in the dtype of ``f``. ``refine=False`` returns the
    best point of the ``(2B')³`` Euler grid; ``out_bandwidth=B' > B`` makes that grid finer (the
    exact, spectral form of upsampling the inputs before correlating). When the signals have a
    rotational symmetry the maximiser is not unique; ``R`` is one of them. The result also
    carries ``contrast`` and ``ambiguous`` (see :class:`AlignResult`): for a zero or constant
    signal every rotation is a maximiser, ``ambiguous`` is True and ``R`` the identity.
    """
    fh, gh, b = pair_coeffs(f, g, bandwidth)
    ob = b if out_bandwidth is None else check_bandwidth(out_bandwidth, "out_bandwidth")
    fh, gh = torch.broadcast_tensors(fh, gh)
    lead = fh.shape[:-2]
    fh, gh = fh.reshape(-1, *fh.shape[-2:]), gh.reshape(-1, *gh.shape[-2:])
    h = cross_spectrum(fh, gh)
    contrast = _contrast(fh, gh, h)
    ambiguous = contrast <= 100 * torch.finfo(f.dtype).eps
    grid = so3_correlation_from_spectrum(h, ob)  # (N, 2B', 2B', 2B')
    flat = grid.reshape(grid.shape[0], -1)
    score, i = flat.max(dim=-1)
    r = so3_grid_to_rotation(unravel_so3_index(i, ob), ob)
    if refine:
        h64 = h.to(torch.complex128)
        r, score = _refine(h64, r, spacing=math.pi / ob)
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    r = torch.where(ambiguous[:, None, None], eye, r)
    return AlignResult(r.to(f.dtype).reshape(*lead, 3, 3), score.to(f.dtype).reshape(lead),
                       contrast.reshape(lead), ambiguous.reshape(lead))
