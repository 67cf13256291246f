"""Canonical local frames of point patches (PEIF's pose normalisation τ), exactly SE(3)-equivariant.

For a patch ``P (K, 3)`` (the K nearest input points of a query ``q``) the frame is a centroid
``μ`` and a rotation ``U = [u₁ u₂ u₃]`` (columns are the axes). Canonical coordinates are
``P̄ = (P − μ) U`` and ``q̄ = (q − μ) U``; a displacement predicted in the frame goes back to
the world as a *vector*, ``Δq = Δq̄ Uᵀ`` (no translation). If the cloud and the queries move by
``x ↦ R x + t``, then ``μ ↦ R μ + t`` and ``U ↦ R U``, so ``P̄`` and ``q̄`` do not change and the
world displacement rotates with ``R``: patch-level SE(3) equivariance by construction.

The construction (all in float64, whatever the input dtype):

1. ``μ`` = centroid, ``C = (P − μ)ᵀ(P − μ) / K``, eigenpairs ``λ₁ ≥ λ₂ ≥ λ₃`` (batched
   ``torch.linalg.eigh``), ``r`` = largest distance of a patch point from ``μ``.
2. **Sign disambiguation** (PEIF, after Zhao et al. 2022): an eigenvector ``e`` is flipped so
   that ``⟨e, y⟩ > 0`` for the anchor ``y``: the patch point farthest from ``μ`` (offset from
   ``μ``); when ``|⟨e, y⟩| ≤ sign_tol · r`` the next farthest point is the anchor, and so on.
   If no patch point decides (a flat patch and its normal), the query decides (``⟨e, q − μ⟩``).
3. **Regular patches** (``λ₁ − λ₂ > gap_tol·λ₁`` and ``λ₂ − λ₃ > gap_tol·λ₁``): ``u₁ = ±e₁``,
   ``u₂ = ±e₂`` as in the paper, and ``u₃ = u₁ × u₂``. PEIF signs ``u₃`` by the anchor too,
   which can give a reflection (det −1); equivision always returns a rotation (det +1). This
   also makes flat patches well defined: their normal ``e₃`` has no sign the points can decide.

**Degenerate patches** (documented behaviour, flagged in :attr:`LocalFrames.status`):

* ``λ₁ ≈ λ₂`` (e.g. a flat patch sampled isotropically, or a sphere-like blob): ``e₁`` is
  arbitrary in its eigenspace, so ``u₁`` is the anchor ``y`` projected onto that eigenspace
  (``AXIS1_FROM_ANCHOR``). If also ``λ₂ − λ₃`` is a real gap, ``u₂ = n × u₁`` with the normal
  ``n = ±e₃`` signed as in 2, so ``u₃ = n``.
* ``λ₂ ≈ λ₃`` (all points on a line, or a thin rod): ``u₂`` comes from the first patch point,
  in order of distance, off the ``u₁`` axis; if there is none (a perfect line), from the query's
  offset perpendicular to ``u₁`` (``AXIS2_FROM_ANCHOR`` / ``USED_QUERY``).
* All points repeated (``r = 0``): ``u₁`` points to the query (``USED_QUERY``); ``u₂``, ``u₃``
  are then not determined by the data (``UNDETERMINED``: ``U`` is completed by a fixed rule,
  which is **not** equivariant). The canonical inputs are still invariant (``P̄ = 0``,
  ``q̄ = (‖q − μ‖, 0, 0)``), but the back-rotated output is not; remove repeated points first
  (:func:`equivision.recon.patches.remove_duplicate_points`).

Frames stay equivariant to float precision (relative error ~1e-6 in float32, ~1e-14 in
float64) as long as the decisions above (which gap is real, which point is the anchor) are not
balanced on a threshold; exact ties in the anchor's distance are broken by index order, which
a rotation can change when the tied points lie on both sides of an axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from equivision._validation import check_finite
from equivision.errors import InvalidInputError, ShapeError

REGULAR = 0
AXIS1_FROM_ANCHOR = 1  # λ₁ ≈ λ₂: first axis from the anchor point, not an eigenvector
AXIS2_FROM_ANCHOR = 2  # λ₂ ≈ λ₃ (or λ₁ ≈ λ₂): second axis not from an eigenvector
USED_QUERY = 4  # the query decided a sign or an axis
UNDETERMINED = 8  # the data does not fix the frame: not equivariant (repeated points)


@dataclass(frozen=True)
class LocalFrames:
    """Frames of a batch of patches: ``centroids (..., 3)``, ``rotations (..., 3, 3)``
    (columns = axes, det +1), ``eigenvalues (..., 3)`` of the covariance (descending) and the
    ``status (...)`` flags (``REGULAR`` or an OR of the degenerate-case flags)."""

    centroids: Tensor
    rotations: Tensor
    eigenvalues: Tensor
    status: Tensor


def _farthest_where(valid: Tensor, dist: Tensor) -> tuple[Tensor, Tensor]:
    """Index ``(B,)`` of the point farthest from the centroid among those ``valid (B, K)``
    (the first valid one in order of decreasing distance; ties go to the lower index), and
    whether there is any."""
    key = torch.where(valid, dist, torch.full_like(dist, -1.0))
    return key.argmax(dim=-1), valid.any(dim=-1)


def _normalize(v: Tensor) -> tuple[Tensor, Tensor]:
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return v / n.clamp_min(torch.finfo(v.dtype).tiny), n[..., 0]


def _take(x: Tensor, idx: Tensor) -> Tensor:
    """``x (B, K, C)`` at ``idx (B,)`` -> ``(B, C)``."""
    return x.gather(1, idx[:, None, None].expand(-1, 1, x.shape[-1]))[:, 0]


def _anchor_signs(proj: Tensor, dist: Tensor, tol: Tensor) -> tuple[Tensor, Tensor]:
    """Signs ``(B, A)`` of the axes whose projections of the patch offsets are ``proj (B, K, A)``
    by the anchor rule, and whether a point decided them."""
    valid = proj.abs() > tol[:, None, None]  # (B, K, A)
    key = torch.where(valid, dist[..., None], torch.full_like(proj, -1.0))
    first, ok = key.argmax(dim=1), valid.any(dim=1)  # (B, A)
    s = proj.gather(1, first[:, None]).squeeze(1).sign()
    return torch.where(ok, s, torch.ones_like(s)), ok


def _degenerate_frames(d: Tensor, dist: Tensor, lam: Tensor, vec: Tensor, v: Tensor | None,
                       gap_tol: float, sign_tol: float) -> tuple[Tensor, Tensor]:
    """The general construction (every case of the module doc) for patches with offsets
    ``d (B, K, 3)`` from their centroid. Returns ``(rotations (B, 3, 3), status (B,))``."""
    b = d.shape[0]
    e1, e3 = vec[..., 0], vec[..., 2]
    r = dist.amax(dim=1)
    tol = sign_tol * r
    status = torch.zeros(b, dtype=torch.int16, device=d.device)

    def flag(mask: Tensor, bit: int) -> None:
        status.bitwise_or_(torch.where(mask, bit, 0).to(torch.int16))

    s, ok = _anchor_signs(d @ vec, dist, tol)
    if v is not None:  # signs no patch point decides: the query decides
        pq = (v[:, None] @ vec)[:, 0]  # (B, 3)
        by_query = ~ok & (pq.abs() > (sign_tol * torch.maximum(r, v.norm(dim=-1)))[:, None])
        s = torch.where(by_query, pq.sign(), s)
        ok = ok | by_query
        used = by_query[:, :2].any(-1)  # axis 3's sign matters only through n below
    else:
        used = torch.zeros(b, dtype=torch.bool, device=d.device)
    signed = vec * s[:, None, :]
    gap12 = (lam[:, 0] - lam[:, 1]) > gap_tol * lam[:, 0]
    gap23 = (lam[:, 1] - lam[:, 2]) > gap_tol * lam[:, 0]

    # first axis: ±e₁, else the anchor projected on the top eigenspace, else the query
    y = _take(d, dist.argmax(dim=1))
    y_top = torch.where(gap23[:, None], y - (y * e3).sum(-1, keepdim=True) * e3, y)
    y_top, ny = _normalize(y_top)
    c1_ok = gap12 & ok[:, 0]
    y_ok = ny > tol
    u1 = torch.where(c1_ok[:, None], signed[..., 0], y_top)
    have1 = c1_ok | y_ok
    flag(~c1_ok & y_ok, AXIS1_FROM_ANCHOR)
    flag(c1_ok & used, USED_QUERY)
    if v is not None:
        vn, nv = _normalize(v)
        by_q = ~have1 & (nv > 0)
        u1 = torch.where(by_q[:, None], vn, u1)
        flag(by_q, USED_QUERY)
        have1 = have1 | by_q
    u1 = torch.where(have1[:, None], u1, e1)

    # second axis: ±e₂, else n × u₁ (n the signed normal), else the farthest point off the
    # u₁ axis, else the query's offset off the u₁ axis
    c2_ok = gap12 & gap23 & ok[:, 1] & c1_ok
    u2 = signed[..., 1]
    nxu1, nn = _normalize(torch.linalg.cross(signed[..., 2], u1))
    n_ok = ~c2_ok & gap23 & ok[:, 2] & (nn > 0.5)  # n must be (nearly) perpendicular to u₁
    u2 = torch.where(n_ok[:, None], nxu1, u2)
    if v is not None:
        flag(n_ok & (~_anchor_signs(d @ vec[..., 2:], dist, tol)[1][:, 0]), USED_QUERY)
    have2 = c2_ok | n_ok
    perp = d - (d @ u1[..., None]) * u1[:, None]
    first, any_off = _farthest_where(torch.linalg.vector_norm(perp, dim=-1) > tol[:, None], dist)
    use_off = ~have2 & any_off
    u2 = torch.where(use_off[:, None], _normalize(_take(perp, first))[0], u2)
    have2 = have2 | use_off
    if v is not None:
        vp, nvp = _normalize(v - (v * u1).sum(-1, keepdim=True) * u1)
        by_q = ~have2 & (nvp > sign_tol * torch.maximum(r, v.norm(dim=-1)))
        u2 = torch.where(by_q[:, None], vp, u2)
        flag(by_q, USED_QUERY)
        have2 = have2 | by_q
    flag(~c2_ok & have2, AXIS2_FROM_ANCHOR)
    # undetermined: complete with the eigenvector least aligned with u₁ (a fixed, arbitrary rule)
    fallback = torch.where(((vec[..., 1] * u1).sum(-1).abs() < 0.9)[:, None], vec[..., 1], e3)
    u2 = torch.where(have2[:, None], u2, fallback)
    flag(~(have1 & have2), UNDETERMINED)
    u2 = _normalize(u2 - (u2 * u1).sum(-1, keepdim=True) * u1)[0]  # exact Gram–Schmidt
    return torch.stack([u1, u2, torch.linalg.cross(u1, u2)], dim=-1), status


def symmetric_eigen_3x3(cov: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``(B, 3)`` (descending) and eigenvectors ``(B, 3, 3)`` (columns) of
    symmetric ``cov (B, 3, 3)`` in closed form: the trigonometric solution of the
    characteristic cubic, the extreme eigenvectors as the largest cross product of two rows
    of ``C − λI``, the middle one as their cross product. Exact to float precision when the
    eigenvalues are separated (the only case it is used for: see :func:`local_frames`);
    several times faster than batched ``eigh`` on CPU."""
    c00, c11, c22 = cov[:, 0, 0], cov[:, 1, 1], cov[:, 2, 2]
    c01, c02, c12 = cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 2]
    q = (c00 + c11 + c22) / 3
    a00, a11, a22 = c00 - q, c11 - q, c22 - q
    p1 = c01 * c01 + c02 * c02 + c12 * c12
    p = torch.sqrt((a00 * a00 + a11 * a11 + a22 * a22 + 2 * p1) / 6)
    ps = p.clamp_min(torch.finfo(cov.dtype).tiny)
    det = (a00 * (a11 * a22 - c12 * c12) - c01 * (c01 * a22 - c12 * c02) + c02 * (c01 * c12 - a11 * c02))
    r = (det / (2 * ps**3)).clamp(-1, 1)
    phi = torch.acos(r) / 3
    l1 = q + 2 * p * torch.cos(phi)
    l3 = q + 2 * p * torch.cos(phi + 2 * torch.pi / 3)
    l2 = 3 * q - l1 - l3
    eye = torch.eye(3, dtype=cov.dtype, device=cov.device)

    def vector_of(lam: Tensor) -> Tensor:
        m = cov - lam[:, None, None] * eye
        r0, r1, r2 = m[:, 0], m[:, 1], m[:, 2]
        cands = torch.stack([torch.linalg.cross(r0, r1), torch.linalg.cross(r0, r2),
                             torch.linalg.cross(r1, r2)], 1)  # (B, 3, 3)
        n = torch.linalg.vector_norm(cands, dim=-1)
        best = _take(cands, n.argmax(dim=1))
        return _normalize(best)[0]

    v1, v3 = vector_of(l1), vector_of(l3)
    v3 = _normalize(v3 - (v3 * v1).sum(-1, keepdim=True) * v1)[0]
    v2 = torch.linalg.cross(v3, v1)
    return torch.stack([l1, l2, l3], -1), torch.stack([v1, v2, v3], -1)


def _frames_chunk(p: Tensor, q: Tensor | None, gap_tol: float, sign_tol: float, eigen: str
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    b, k, _ = p.shape
    mu = p.mean(dim=1)
    d = p - mu[:, None]
    cov = torch.einsum("bki,bkj->bij", d, d) / k
    if eigen == "closed_form":
        lam, vec = symmetric_eigen_3x3(cov)
    else:
        lam, vec = torch.linalg.eigh(cov)
        lam, vec = lam.flip(-1), vec.flip(-1)  # descending
    lam = lam.clamp_min(0)
    dist = torch.linalg.vector_norm(d, dim=-1)  # (B, K)
    r = dist.amax(dim=1)
    # the fast path, for regular patches whose farthest point decides both signs (nearly all):
    # the paper's signs of e₁ and e₂, u₃ = u₁ × u₂; the others take the general route
    py = (_take(d, dist.argmax(dim=1))[:, None] @ vec[..., :2])[:, 0]  # (B, 2)
    ok = py.abs() > (sign_tol * r)[:, None]
    s = py.sign()
    u1, u2 = vec[..., 0] * s[:, :1], vec[..., 1] * s[:, 1:]
    rot = torch.stack([u1, u2, torch.linalg.cross(u1, u2)], dim=-1)
    status = torch.zeros(b, dtype=torch.int16, device=p.device)
    regular = ((lam[:, 0] - lam[:, 1]) > gap_tol * lam[:, 0]) & \
              ((lam[:, 1] - lam[:, 2]) > gap_tol * lam[:, 0]) & ok.all(-1)
    if not bool(regular.all()):
        sub = (~regular).nonzero()[:, 0]
        if eigen == "closed_form":  # near-equal eigenvalues: the robust solver for these
            lam_s, vec_s = torch.linalg.eigh(cov[sub])
            lam[sub], vec[sub] = lam_s.flip(-1).clamp_min(0), vec_s.flip(-1)
        rot_s, st_s = _degenerate_frames(d[sub], dist[sub], lam[sub], vec[sub],
                                         None if q is None else q[sub] - mu[sub], gap_tol, sign_tol)
        rot[sub], status[sub] = rot_s, st_s
    return mu, rot, lam, status


def local_frames(
    patches: Tensor, queries: Tensor | None = None, *,
    gap_tol: float = 1e-2, sign_tol: float = 1e-3, chunk_size: int = 65536,
    eigen: str = "closed_form",
) -> LocalFrames:
    """Canonical frames of ``patches (..., K, 3)``, optionally helped by their ``queries
    (..., 3)`` in degenerate cases (see the module doc). Computed in float64 in chunks of
    ``chunk_size`` patches (millions of patches fit), returned in the patches' dtype.
    ``eigen``: ``"closed_form"`` (:func:`symmetric_eigen_3x3`, with batched ``eigh`` for the
    few patches whose eigenvalues are within ``gap_tol``) or ``"eigh"`` (batched
    ``torch.linalg.eigh`` for all); both give the same frames."""
    if not patches.is_floating_point():
        raise InvalidInputError(f"patches must be floating point, got {patches.dtype}")
    if patches.ndim < 2 or patches.shape[-1] != 3:
        raise ShapeError(f"patches must have shape (..., K, 3), got {tuple(patches.shape)}")
    if patches.shape[-2] < 1:
        raise ShapeError("patches must hold at least one point")
    check_finite(patches, "patches")
    batch = patches.shape[:-2]
    if queries is not None:
        if queries.shape != (*batch, 3):
            raise ShapeError(f"queries must have shape {(*batch, 3)} to match the patches, "
                             f"got {tuple(queries.shape)}")
        if queries.device != patches.device:
            raise InvalidInputError(f"queries are on {queries.device} but patches on {patches.device}; "
                                    "move both to one device")
        check_finite(queries, "queries")
    if not (0 < gap_tol < 1 and 0 < sign_tol < 1):
        raise InvalidInputError(f"gap_tol and sign_tol must be in (0, 1), got {gap_tol}, {sign_tol}")
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be positive, got {chunk_size}")
    if eigen not in ("closed_form", "eigh"):
        raise InvalidInputError(f"eigen must be 'closed_form' or 'eigh', got {eigen!r}")
    k = patches.shape[-2]
    p = patches.reshape(-1, k, 3)
    qq = queries.reshape(-1, 3) if queries is not None else None
    outs = []
    for s in range(0, p.shape[0], chunk_size):
        pc = p[s : s + chunk_size].detach().double()
        qc = qq[s : s + chunk_size].detach().double() if qq is not None else None
        outs.append(_frames_chunk(pc, qc, gap_tol, sign_tol, eigen))
    dt = patches.dtype
    if outs:
        mu, rot, lam, st = (torch.cat(t) for t in zip(*outs, strict=True))
    else:
        z = patches.new_zeros
        mu, rot, lam, st = z(0, 3), z(0, 3, 3), z(0, 3), z(0, dtype=torch.int16)
    return LocalFrames(mu.to(dt).reshape(*batch, 3), rot.to(dt).reshape(*batch, 3, 3),
                       lam.to(dt).reshape(*batch, 3), st.reshape(batch))


def cloud_frame(points: Tensor, *, gap_tol: float = 1e-2, sign_tol: float = 1e-3) -> LocalFrames:
    """The canonical frame of a whole cloud ``(N, 3)``: its centroid and principal axes, by
    the same construction as a patch frame (:func:`local_frames` with the cloud as one patch
    and no query; batch shape ``()``).

    Used to align the reconstruction grid with the cloud, so that moving the cloud by
    ``x ↦ R x + t`` moves the frame with it and the extraction sees the same canonical cloud.
    With distinct eigenvalues (gaps above ``gap_tol·λ₁``) the axes are the eigenvectors,
    signed by the farthest point (anchor rule). For (near-)repeated eigenvalues — an
    isotropic cloud such as a sampled sphere or a cube's corners, or a disc — the axes in the
    repeated eigenspace come from the anchor point instead (``AXIS1_FROM_ANCHOR`` /
    ``AXIS2_FROM_ANCHOR`` in ``status``): still equivariant as long as the farthest point is
    unique by more than float rounding, but the frame then hangs on one sample, so it jumps
    between two samplings of the same surface (not between two poses of one cloud).
    """
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ShapeError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    fr = local_frames(points[None], gap_tol=gap_tol, sign_tol=sign_tol)
    return LocalFrames(fr.centroids[0], fr.rotations[0], fr.eigenvalues[0], fr.status[0])


# ----- maps into and out of the frames -------------------------------------------------------------
def points_to_frame(points: Tensor, frames: LocalFrames) -> Tensor:
    """Canonical coordinates ``(x − μ) U`` of ``points (..., 3)`` (one per frame) or
    ``(..., M, 3)`` (M per frame, e.g. the patches themselves)."""
    mu, rot = frames.centroids, frames.rotations
    if points.ndim == mu.ndim:
        return ((points - mu)[..., None, :] @ rot)[..., 0, :]
    if points.ndim == mu.ndim + 1:
        return (points - mu[..., None, :]) @ rot
    raise ShapeError(f"points {tuple(points.shape)} do not match frames of batch {tuple(mu.shape[:-1])}")


def points_from_frame(local: Tensor, frames: LocalFrames) -> Tensor:
    """Inverse of :func:`points_to_frame`: ``x̄ Uᵀ + μ``."""
    mu, rot = frames.centroids, frames.rotations
    if local.ndim == mu.ndim:
        return (local[..., None, :] @ rot.transpose(-1, -2))[..., 0, :] + mu
    if local.ndim == mu.ndim + 1:
        return local @ rot.transpose(-1, -2) + mu[..., None, :]
    raise ShapeError(f"points {tuple(local.shape)} do not match frames of batch {tuple(mu.shape[:-1])}")


def vectors_to_frame(vectors: Tensor, frames: LocalFrames) -> Tensor:
    """Frame components ``v U`` of world vectors ``(..., 3)`` (displacements: no centroid)."""
    return (vectors[..., None, :] @ frames.rotations)[..., 0, :]


def vectors_from_frame(local: Tensor, frames: LocalFrames) -> Tensor:
    """World vectors ``v̄ Uᵀ`` from frame components ``(..., 3)``: how a displacement predicted
    in the frame goes back (rotation only, PEIF's τ⁻¹ for a vector)."""
    return (local[..., None, :] @ frames.rotations.transpose(-1, -2))[..., 0, :]


@dataclass(frozen=True)
class CanonicalPatches:
    """What the displacement predictor sees: ``patches (Q, K, 3)`` and ``queries (Q, 3)`` in
    their frames, the ``frames`` and the cloud ``indices (Q, K)`` of the patch points."""

    patches: Tensor
    queries: Tensor
    frames: LocalFrames
    indices: Tensor


def canonical_patches(cloud: Tensor, queries: Tensor, k: int = 32, *, gap_tol: float = 1e-2,
                      sign_tol: float = 1e-3, chunk_size: int = 65536, method: str = "auto",
                      ) -> CanonicalPatches:
    """K-NN patches of ``queries (Q, 3)`` in ``cloud (N, 3)``, expressed in their canonical
    frames (K = 32 as PEIF uses for ShapeNet and ABC)."""
    from equivision.recon.patches import knn_patches

    patches, idx = knn_patches(cloud, queries, k, method=method)  # type: ignore[arg-type]
    fr = local_frames(patches, queries, gap_tol=gap_tol, sign_tol=sign_tol, chunk_size=chunk_size)
    return CanonicalPatches(points_to_frame(patches, fr), points_to_frame(queries, fr), fr, idx)
