"""Relative 3D pose between two rotation-equivariant spherical embeddings.

Two embeddings ``a, b`` ``(..., C, 2B, 2B)`` of one object seen in two poses, with
``b ≈ rotate(a, R)`` (object pose of ``b`` = ``R`` times that of ``a``): :func:`relative_pose`
returns that ``R``, the rotation carrying a's pose onto b's. If image ``a`` shows a mesh and
image ``b`` shows ``R·mesh``, and the embedding is equivariant, the answer is ``R``.

It maximises ``C(R) = Σ_c ∫ b_c(x) a_c(R⁻¹x) dx`` over SO(3): all channels at once through one
SO(3) FFT (:func:`~equivision.sphere.so3fft.so3_correlation_from_spectrum`, on a finer grid
with ``out_bandwidth > B``, the spectral form of upsampling), then climbs below the grid with
the Newton refinement of :func:`~equivision.sphere.align.align`, evaluating the correlation as
a Fourier series in the Euler angles (:mod:`~equivision.sphere.so3series`).

Besides the best rotation it looks for the next *distinct* peak: the highest local maximum of
the grid correlation at least ``separation`` (geodesic angle, default 30°) from the best,
refined the same way; when such a candidate climbs higher than the grid's best point (two
near-equal peaks, the grid closer to the lower one), it is the answer and the other the second
peak. From the two peaks and the mean ``C̄`` of ``C`` over SO(3):

* ``confidence = (C₁ − C₂) / (C₁ − C̄)`` in ``[0, 1]``: 0 when the second peak is as high as
  the first, 1 when it is no higher than the mean (clamped there);
* ``symmetric = confidence < symmetry_tol``: two near-equal distinct peaks, as for an object
  with a 2-fold symmetry; ``second_rotation`` is the other candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from equivision.errors import InvalidInputError, ShapeError
from equivision.groups.spatial import SO3
from equivision.sphere.align import _contrast, _refine
from equivision.sphere.cache import TableCache
from equivision.sphere.grid import check_bandwidth
from equivision.sphere.rotate import rotate_coeffs
from equivision.sphere.so3fft import (
    cross_spectrum,
    pair_coeffs,
    so3_correlation_from_spectrum,
    so3_grid_rotations,
)
from equivision.sphere.so3series import MAX_SERIES_BANDWIDTH, correlation_series, series_at

__all__ = ["RelativePose", "brute_force_pose", "relative_pose"]


@dataclass(frozen=True)
class RelativePose:
    """The answer of :func:`relative_pose`; every field has the leading shape ``(...)`` of the
    input pairs.

    * ``rotation`` ``(..., 3, 3)``: ``R`` with ``rotate(a, R) ≈ b`` (a's pose onto b's);
    * ``score`` ``(...,)``: ``C(R)``;
    * ``second_rotation`` ``(..., 3, 3)``, ``second_score`` ``(...,)``: the next distinct peak;
    * ``confidence`` ``(...,)`` in ``[0, 1]``: ``(C₁ − C₂) / (C₁ − C̄)``;
    * ``symmetric`` ``(...,)`` bool: ``confidence < symmetry_tol``;
    * ``contrast``, ``ambiguous`` ``(...,)``: as in :class:`~equivision.sphere.align.AlignResult`
      (an ambiguous pair, e.g. a zero embedding, has identity rotations and confidence 0).
    """

    rotation: Tensor
    score: Tensor
    second_rotation: Tensor
    second_score: Tensor
    confidence: Tensor
    symmetric: Tensor
    contrast: Tensor
    ambiguous: Tensor


def _build_grid_rotations(bandwidth: int) -> Tensor:
    return so3_grid_rotations(bandwidth).reshape(-1, 3, 3)


# the (2B')³ rotation table: building it costs more than the FFT itself at B' = 32
_grid_rotations = TableCache(_build_grid_rotations, maxsize=4)


def _local_maxima(grid: Tensor) -> Tensor:
    """Mask ``(N, n, n, n)`` of the points of an SO(3) grid ``[α, β, γ]`` that are at least their
    26 neighbours: α and γ wrap around, β does not (its ends are not neighbours)."""
    # the 27-point maximum as three 3-point maxima, one axis at a time (max_pool3d on float64
    # took most of the time of this search)
    m = torch.maximum(grid, torch.maximum(grid.roll(1, 1), grid.roll(-1, 1)))  # α wraps
    m = torch.maximum(m, torch.maximum(m.roll(1, 3), m.roll(-1, 3)))  # γ wraps
    lo = F.pad(m[:, :, :-1], (0, 0, 1, 0), value=-math.inf)  # β does not
    hi = F.pad(m[:, :, 1:], (0, 0, 0, 1), value=-math.inf)
    return grid >= torch.maximum(m, torch.maximum(lo, hi))


def _cos_angle(r: Tensor, rots: Tensor) -> Tensor:
    """``cos`` of the geodesic angle ``(N, G)`` between rotations ``r (N, 3, 3)`` and ``rots (G, 3, 3)``:
    ``(tr(rᵀ g) − 1) / 2``, the trace as one matrix product."""
    tr = r.reshape(-1, 9) @ rots.reshape(-1, 9).t()
    return (0.5 * (tr - 1)).clamp(-1, 1)


def _second_candidates(flat: Tensor, maxima: Tensor, rots: Tensor, r1: Tensor, separation: float,
                       k: int, cos_d: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The ``k`` highest grid local maxima at least ``separation`` from ``r1 (N, 3, 3)``: values
    and flat indices ``(N, k)`` (``-inf`` where there are fewer); the best distinct grid points
    where there is no distinct maximum (e.g. a monotone shoulder)."""
    cos_d = _cos_angle(r1, rots) if cos_d is None else cos_d
    distinct = cos_d <= math.cos(separation)
    peaks = maxima & distinct
    no_peak = ~peaks.any(-1)
    pick = torch.where(no_peak[:, None], distinct, peaks)
    return torch.where(pick, flat, torch.full_like(flat, -math.inf)).topk(k, dim=-1)


def _refine_together(h: Tensor, flat: Tensor, maxima: Tensor, rots: Tensor, r1: Tensor, separation: float,
                     k: int, spacing: float, series: bool) -> tuple[Tensor, ...]:
    """The refinement of the best grid point ``r1 (N, 3, 3)`` and of the second-peak candidates
    in one climb (one evaluation per step for all of them), with the result of the sequential
    order: the candidates depend on the *refined* best rotation, so the climb takes those of
    the grid point and the (at most two) highest maxima within a grid spacing of the
    separation from it; afterwards the exact candidates (:func:`_second_candidates` of the
    refined rotation) are looked up among them, and those missing (e.g. where there is no
    distinct maximum, so that the candidates are the points at the separation) are refined
    on their own.

    Returns ``(R₁ (N, 3, 3), C₁ (N,), candidate values (N, k), indices (N, k), refined
    candidates (N, k, 3, 3), their C (N, k))``."""
    n_pairs = r1.shape[0]
    ar = torch.arange(n_pairs, device=r1.device)
    # the candidates of the grid point, and the best maxima within a grid spacing of the
    # separation from it: those that may count as distinct, or not, once r1 has moved
    cos_d = _cos_angle(r1, rots)
    _, li = _second_candidates(flat, maxima, rots, r1, separation, k, cos_d)
    near = maxima & (cos_d <= math.cos(max(separation - spacing, 0.0)))
    near &= cos_d > math.cos(min(separation + spacing, math.pi))
    e_val, edge = torch.where(near, flat, torch.full_like(flat, -math.inf)).topk(min(2, flat.shape[-1]))
    li = torch.cat([li, edge[:, :int(torch.isfinite(e_val).sum(-1).max())]], -1)  # (N, k … k + 2)
    start = torch.cat([r1[:, None], rots[li]], 1)  # pair-major
    per = start.shape[1]
    t = correlation_series(h) if series else None

    def run(rows: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
        per = start.shape[1]
        if t is None:
            return _refine(h[rows].repeat_interleave(per, 0), start.reshape(-1, 3, 3), spacing=spacing)
        sub = t[rows]

        def ev(r: Tensor) -> Tensor:
            return series_at(sub, r.reshape(sub.shape[0], -1, 3, 3)).reshape(r.shape[:-2])
        return _refine(h, start.reshape(-1, 3, 3), spacing=spacing, evaluate=ev)

    rr, rc = run(ar, start)
    rr, rc = rr.reshape(n_pairs, per, 3, 3), rc.reshape(n_pairs, per)
    r1, c1 = rr[:, 0], rc[:, 0]
    cv, ci = _second_candidates(flat, maxima, rots, r1, separation, k)
    match = ci[:, :, None] == li[:, None, :]
    pos = match.to(torch.int8).argmax(-1)
    out_r, out_c = rr[:, 1:][ar[:, None], pos], rc[:, 1:][ar[:, None], pos]
    missing = ~match.any(-1) & torch.isfinite(cv)  # an unused slot (-inf) needs no climb
    rows = missing.any(-1).nonzero()[:, 0]
    if rows.numel():
        mr, mc = run(rows, rots[ci[rows]])
        m = missing[rows]
        out_r[rows] = torch.where(m[..., None, None], mr.reshape(-1, k, 3, 3), out_r[rows])
        out_c[rows] = torch.where(m, mc.reshape(-1, k), out_c[rows])
    return r1, c1, cv, ci, out_r, out_c


def relative_pose(a: Tensor, b: Tensor, *, out_bandwidth: int | None = None, refine: bool = True,
                  separation: float = math.pi / 6, symmetry_tol: float = 0.05,
                  candidates: int = 3) -> RelativePose:
    """The rotation from a's pose to b's for embeddings ``a, b`` ``(..., C, 2B, 2B)``.

    ``R`` maximises ``Σ_c ∫ b_c(x) a_c(R⁻¹x) dx``, so ``rotate(a, R) ≈ b``. ``out_bandwidth=B'``
    (``≥ B``) evaluates the correlation on the finer ``(2B')³`` grid before refining;
    ``refine=False`` returns grid points. ``separation`` (radians, in ``(0, π)``) is the
    geodesic distance from the best rotation beyond which a peak counts as distinct; the
    ``candidates`` highest distinct grid maxima are refined and the best that stays distinct
    is the second peak. See the module docstring for ``confidence`` and ``symmetric``.
    Leading dimensions broadcast; the rotations are in the dtype of ``a``.

    The refinement evaluates the correlation as a Fourier series in the Euler angles
    (:mod:`~equivision.sphere.so3series`, built once per pair) up to ``B = 32``; beyond it by
    the Wigner-d recursion at each rotation. Both are exact to rounding.
    """
    return _relative_pose(a, b, out_bandwidth=out_bandwidth, refine=refine, separation=separation,
                          symmetry_tol=symmetry_tol, candidates=candidates, reference=False)


def _relative_pose(a: Tensor, b: Tensor, *, out_bandwidth: int | None, refine: bool, separation: float,
                   symmetry_tol: float, candidates: int, reference: bool) -> RelativePose:
    """:func:`relative_pose`; ``reference=True`` evaluates every refinement step by the Wigner-d
    recursion (:func:`~equivision.sphere.so3fft.correlation_at`): the slow oracle of the tests."""
    if not 0 < float(separation) < math.pi:
        raise InvalidInputError(f"separation must be an angle in (0, π) radians, got {separation!r}")
    if not 0 <= float(symmetry_tol) <= 1:
        raise InvalidInputError(f"symmetry_tol must lie in [0, 1], got {symmetry_tol!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise InvalidInputError(f"candidates must be a positive integer, got {candidates!r}")
    bh, ah, bw = pair_coeffs(b, a, None, "b", "a")
    ob = bw if out_bandwidth is None else check_bandwidth(out_bandwidth, "out_bandwidth")
    if ob < bw:
        raise InvalidInputError(f"out_bandwidth ({ob}) must be at least the bandwidth ({bw})")
    bh, ah = torch.broadcast_tensors(bh, ah)
    lead = bh.shape[:-2]
    bh, ah = bh.reshape(-1, *bh.shape[-2:]), ah.reshape(-1, *ah.shape[-2:])
    h = cross_spectrum(bh, ah)  # C(R) = Σ h^l_mn D^l_mn(R)
    contrast = _contrast(bh, ah, h)
    ambiguous = contrast <= 100 * torch.finfo(a.dtype).eps
    mean = h[:, 0, h.shape[-3] - 1, 0].real.to(torch.float64)  # the l = m = n = 0 term (m offset L − 1)
    grid = so3_correlation_from_spectrum(h, ob).to(torch.float64)  # (N, n, n, n)
    n_pairs = grid.shape[0]
    flat = grid.reshape(n_pairs, -1)
    rots = _grid_rotations(ob, dtype=torch.float64, device=grid.device)  # (n³, 3, 3)
    c1, i1 = flat.max(dim=-1)
    r1 = rots[i1]
    h64 = h.to(torch.complex128)
    spacing = math.pi / ob
    maxima = _local_maxima(grid).reshape(n_pairs, -1)
    k = min(candidates, flat.shape[-1])
    ar = torch.arange(n_pairs, device=grid.device)
    if refine and reference:  # the best peak first, then the candidates distinct from it
        r1, c1 = _refine(h64, r1, spacing=spacing)
        cv, ci = _second_candidates(flat, maxima, rots, r1, separation, k)
        rr, rc = _refine(h64.repeat_interleave(k, 0), rots[ci].reshape(-1, 3, 3), spacing=spacing)
        rr, rc = rr.reshape(n_pairs, k, 3, 3), rc.reshape(n_pairs, k)
    elif refine:
        r1, c1, cv, ci, rr, rc = _refine_together(h64, flat, maxima, rots, r1, separation, k, spacing,
                                                  bw <= MAX_SERIES_BANDWIDTH)
    else:
        cv, ci = _second_candidates(flat, maxima, rots, r1, separation, k)
    cr = rots[ci]  # (N, k, 3, 3)
    if refine:
        # a candidate that climbed back to the best peak is not a distinct peak
        stays = SO3.geodesic_distance(rr, r1[:, None], check=False) >= separation
        rc_ok = torch.where(stays & torch.isfinite(cv), rc, torch.full_like(rc, -math.inf))
        j = rc_ok.argmax(-1)
        ok = torch.isfinite(rc_ok.gather(-1, j[:, None])[:, 0])
        r2 = torch.where(ok[:, None, None], rr[ar, j], cr[:, 0])
        c2 = torch.where(ok, rc_ok[ar, j], cv[:, 0])
        # The grid's best point can sit on the lower of two near-equal peaks (the grid misses
        # the top of a narrow one): a distinct candidate that climbed higher is the maximum, and
        # the grid point's peak, at least `separation` from it, becomes the second. Peaks equal to
        # rounding (an exact symmetry) keep their order, so both refinement paths agree.
        swap = ok & (c2 - c1 > 1e-12 * (c1 - mean).abs())
        r1, r2 = (torch.where(swap[:, None, None], r2, r1), torch.where(swap[:, None, None], r1, r2))
        c1, c2 = torch.where(swap, c2, c1), torch.where(swap, c1, c2)
    else:
        r2, c2 = cr[:, 0], cv[:, 0]
    span = c1 - mean
    conf = torch.where(span > 0, (c1 - c2) / span.clamp_min(1e-300), torch.zeros_like(span)).clamp(0, 1)
    conf = torch.where(ambiguous, torch.zeros_like(conf), conf)
    eye = torch.eye(3, dtype=r1.dtype, device=r1.device)
    r1 = torch.where(ambiguous[:, None, None], eye, r1)
    r2 = torch.where(ambiguous[:, None, None], eye, r2)
    dt = a.dtype

    def out(t: Tensor, tail: tuple[int, ...] = ()) -> Tensor:
        return t.reshape((*lead, *tail))

    return RelativePose(
        rotation=out(r1.to(dt), (3, 3)), score=out(c1.to(dt)),
        second_rotation=out(r2.to(dt), (3, 3)), second_score=out(c2.to(dt)),
        confidence=out(conf), symmetric=out(conf < symmetry_tol), contrast=out(contrast),
        ambiguous=out(ambiguous))


def brute_force_pose(a: Tensor, b: Tensor, rotations: Tensor, *, chunk: int = 512) -> tuple[Tensor, Tensor]:
    """The best of candidate ``rotations`` ``(P, 3, 3)`` for embeddings ``a, b`` ``(C, 2B, 2B)``
    by rotating ``a`` by each and taking the inner product ``Σ_c ∫ b_c · (R·a)_c`` (computed
    on real orthonormal coefficients, where it equals the grid quadrature for band-limited
    signals). Returns ``(R (3, 3), score ())``: the anchor :func:`relative_pose` is checked
    and timed against; it tries the rotations one at a time, ``chunk`` per batch."""
    if a.ndim != 3 or b.ndim != 3:
        raise ShapeError(f"a and b must have shape (C, 2B, 2B), got {tuple(a.shape)} and {tuple(b.shape)}")
    bh, ah, _ = pair_coeffs(b, a, None, "b", "a")
    if rotations.ndim != 3 or rotations.shape[-2:] != (3, 3) or rotations.shape[0] == 0:
        raise ShapeError(f"rotations must have shape (P, 3, 3) with P ≥ 1, got {tuple(rotations.shape)}")
    rotations = rotations.to(a.dtype)
    scores = []
    for s in range(0, rotations.shape[0], chunk):
        r = rotations[s:s + chunk]
        ra = rotate_coeffs(ah, r[:, None], check=False)  # (P, C, B²)
        scores.append((ra * bh).sum(dim=(-2, -1)))
    sc = torch.cat(scores)
    i = int(sc.argmax())
    return rotations[i], sc[i]

