"""First hits in PyTorch, on any device: brute force over every ray–face pair, and a bucketed
version for rays whose lines share one point (the rays of a sphere grid toward its centre,
or of a pinhole camera from its eye), about 20× faster on a 32k-face mesh."""

from __future__ import annotations

import torch
from torch import Tensor

from equivision.io.meshes import Mesh
from equivision.render.rays import common_point


def first_hits_torch(
    mesh: Mesh, origins: Tensor, directions: Tensor, *, chunk_pairs: int = 8_000_000
) -> tuple[Tensor, Tensor]:
    """First hits by brute force over all faces, in chunks of rays (``chunk_pairs`` ray–face
    pairs at a time), on the device of ``origins``.

    Written as matrix products: the hit distance is ``t = (a·n − o·n) / (d·n)`` and the
    barycentric coordinates of ``o + t d`` are affine in it through the per-face gradient
    vectors ``g1 = (e2 × n)/|n|²``, ``g2 = (n × e1)/|n|²``, so every ray–face quantity is one
    ``(rays × 3) @ (3 × faces)`` product.
    """
    dev, dt = origins.device, origins.dtype
    v = mesh.vertices.to(device=dev, dtype=dt)
    f = mesh.faces.to(dev)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = b - a, c - a
    n = torch.linalg.cross(e1, e2)
    nn2 = (n * n).sum(-1)
    good = nn2 > (1e-30 if dt == torch.float64 else 1e-20)
    n, a, e1, e2, nn2 = n[good], a[good], e1[good], e2[good], nn2[good]
    face_ids = torch.nonzero(good).squeeze(1)
    g1 = torch.linalg.cross(e2, n) / nn2[:, None]
    g2 = torch.linalg.cross(n, e1) / nn2[:, None]
    mats = torch.stack([n, g1, g2], 0)  # (3, F, 3)
    offs = torch.stack([(a * n).sum(-1), (a * g1).sum(-1), (a * g2).sum(-1)], 0)  # (3, F)
    eps = 1e-12 if dt == torch.float64 else 1e-6
    n_rays = origins.shape[0]
    n_faces = max(1, n.shape[0])
    step = max(1, chunk_pairs // n_faces)
    t_out = torch.full((n_rays,), float("inf"), dtype=dt, device=dev)
    face_out = torch.full((n_rays,), -1, dtype=torch.long, device=dev)
    if n.shape[0] == 0:
        return t_out, face_out
    for s in range(0, n_rays, step):
        o, d = origins[s : s + step], directions[s : s + step]
        o_dot = torch.einsum("rk,mfk->mrf", o, mats) - offs[:, None, :]  # (3, r, F)
        d_dot = torch.einsum("rk,mfk->mrf", d, mats)
        denom = d_dot[0]
        ok = denom.abs() > eps * nn2.sqrt()[None]
        t = -o_dot[0] / torch.where(ok, denom, torch.ones_like(denom))
        u = o_dot[1] + t * d_dot[1]
        w = o_dot[2] + t * d_dot[2]
        valid = ok & (u >= -eps) & (w >= -eps) & (u + w <= 1 + eps) & (t > 0)
        t = torch.where(valid, t, torch.full_like(t, float("inf")))
        tmin, idx = t.min(dim=1)
        t_out[s : s + step] = tmin
        face_out[s : s + step] = torch.where(torch.isfinite(tmin), face_ids[idx], torch.full_like(idx, -1))
    return t_out, face_out


def first_hits_through_point(
    mesh: Mesh, origins: Tensor, directions: Tensor, *, max_cap: float = 1.0, chunk_pairs: int = 4_000_000
) -> tuple[Tensor, Tensor]:
    """First hits of rays whose lines all pass through one point ``c`` (the rays of
    :func:`raycast_sphere`), without Embree and far faster than :func:`first_hits_torch`.

    Seen from ``c``, a face covers a spherical triangle ``T`` of directions (``−T`` for hits
    beyond ``c``), inside a cap of angular radius ``ρ`` about its mean direction. Rays are
    bucketed by direction on a θ–φ grid; each face is tested, with the same exact
    ray–triangle formula as :func:`first_hits_torch`, only against the rays of the buckets
    its two caps overlap. Faces with ``ρ > max_cap`` (close to ``c``) are tested against every
    ray. Same results as :func:`first_hits_torch` (ties broken by the lower face index).
    """
    dev, dt = origins.device, torch.float64
    o, d = origins.to(dt), directions.to(dt)
    n_rays = o.shape[0]
    t_out = torch.full((n_rays,), float("inf"), dtype=dt, device=dev)
    face_out = torch.full((n_rays,), -1, dtype=torch.long, device=dev)
    if n_rays == 0 or mesh.faces.shape[0] == 0:
        return t_out.to(origins.dtype), face_out
    c = common_point(o, d)
    v = mesh.vertices.to(device=dev, dtype=dt) - c
    f = mesh.faces.to(dev)
    a, b, cc = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    e1, e2 = b - a, cc - a
    nrm = torch.linalg.cross(e1, e2)
    nn2 = (nrm * nrm).sum(-1)
    g1 = torch.linalg.cross(e2, nrm) / nn2.clamp_min(1e-300)[:, None]
    g2 = torch.linalg.cross(nrm, e1) / nn2.clamp_min(1e-300)[:, None]
    o = o - c  # work in coordinates centred on c

    # buckets of rays by the direction w = −d (from c toward the ray's origin)
    n_th = max(4, round((n_rays / 8) ** 0.5))
    n_ph = 2 * n_th
    w = -d
    th = torch.acos(w[:, 2].clamp(-1, 1))
    ph = torch.atan2(w[:, 1], w[:, 0])
    row = (th / torch.pi * n_th).long().clamp(0, n_th - 1)
    col = ((ph + torch.pi) / (2 * torch.pi) * n_ph).long().clamp(0, n_ph - 1)
    order = torch.argsort(row * n_ph + col, stable=True)
    counts = torch.bincount(row * n_ph + col, minlength=n_th * n_ph)
    starts = torch.cumsum(counts, 0) - counts

    # each face's cap (mean direction m, radius rho) and the antipodal cap
    vert = torch.stack([a, b, cc], 1)  # (F, 3, 3)
    length = vert.norm(dim=-1)
    q = vert / length.clamp_min(1e-300)[..., None]
    m = q.sum(1)
    m_len = m.norm(dim=-1)
    m = m / m_len.clamp_min(1e-300)[:, None]
    rho = torch.acos((q * m[:, None]).sum(-1).clamp(-1, 1)).amax(1) + 1e-9
    good = nn2 > 1e-30
    near = (length.amin(1) <= 1e-12 * length.amax()) | (m_len < 1e-6) | (rho > max_cap)
    local = torch.nonzero(good & ~near).squeeze(1)
    caps_face = torch.cat([local, local])
    caps_m = torch.cat([m[local], -m[local]])
    caps_rho = torch.cat([rho[local], rho[local]])
    th_m = torch.acos(caps_m[:, 2].clamp(-1, 1))
    ph_m = torch.atan2(caps_m[:, 1], caps_m[:, 0])
    lo, hi = th_m - caps_rho, th_m + caps_rho
    row0 = (lo.clamp_min(0) / torch.pi * n_th).long().clamp(0, n_th - 1)
    row1 = (hi.clamp_max(torch.pi) / torch.pi * n_th).long().clamp(0, n_th - 1)
    polar = (lo <= 0) | (hi >= torch.pi)
    dph = torch.asin((torch.sin(caps_rho) / torch.sin(th_m).clamp_min(1e-300)).clamp(max=1.0))
    col0 = ((ph_m - dph + torch.pi) / (2 * torch.pi) * n_ph).floor().long()
    col1 = ((ph_m + dph + torch.pi) / (2 * torch.pi) * n_ph).floor().long()
    ncol = torch.where(polar, torch.full_like(col0, n_ph), (col1 - col0 + 1).clamp(1, n_ph))
    col0 = torch.where(polar, torch.zeros_like(col0), col0)
    nrow = row1 - row0 + 1
    # (cap, bucket) pairs, then (face, ray) pairs
    per_cap = nrow * ncol
    cap_of = torch.repeat_interleave(torch.arange(len(per_cap), device=dev), per_cap)
    k = torch.arange(len(cap_of), device=dev) - (torch.cumsum(per_cap, 0) - per_cap)[cap_of]
    bucket = (row0[cap_of] + k // ncol[cap_of]) * n_ph + (col0[cap_of] + k % ncol[cap_of]) % n_ph
    keep = counts[bucket] > 0
    cap_of, bucket = cap_of[keep], bucket[keep]
    rays_per = counts[bucket]
    ends = torch.cumsum(rays_per, 0)
    eps = 1e-12
    n_faces = int(f.shape[0])

    def test_pairs(face: Tensor, ray: Tensor) -> None:
        oo, dd, aa = o[ray], d[ray], a[face]
        nf = nrm[face]
        dn = (dd * nf).sum(-1)
        ok = dn.abs() > eps * nn2[face].sqrt()
        t = -((oo - aa) * nf).sum(-1) / torch.where(ok, dn, torch.ones_like(dn))
        hit = oo + t[:, None] * dd - aa
        u = (hit * g1[face]).sum(-1)
        wv = (hit * g2[face]).sum(-1)
        valid = ok & (u >= -eps) & (wv >= -eps) & (u + wv <= 1 + eps) & (t > 0)
        t = torch.where(valid, t, torch.full_like(t, float("inf")))
        before = t_out[ray]
        t_out.scatter_reduce_(0, ray, t, reduce="amin")
        face_out[ray[t_out[ray] < before]] = n_faces  # a nearer hit: forget the old face
        best = valid & (t == t_out[ray])
        face_out.scatter_reduce_(0, ray[best], face[best], reduce="amin")  # ties: lower index

    first = 0
    while first < len(bucket):
        base = int(ends[first - 1]) if first else 0
        last = int(torch.searchsorted(ends, base + chunk_pairs, right=True))
        last = max(last, first + 1)
        pr = rays_per[first:last]
        pb = torch.repeat_interleave(torch.arange(first, last, device=dev), pr)
        j = torch.arange(len(pb), device=dev) - (torch.cumsum(pr, 0) - pr)[pb - first]
        test_pairs(caps_face[cap_of[pb]], order[starts[bucket[pb]] + j])
        first = last
    wide = torch.nonzero(good & near).squeeze(1)
    if len(wide):  # faces close to c subtend wide angles: test them against every ray
        t_w, f_w = first_hits_torch(Mesh(mesh.vertices.to(device=dev, dtype=dt), f[wide]),
                                    origins.to(dt), directions.to(dt))
        f_w = torch.where(f_w >= 0, wide[f_w.clamp_min(0)], f_w)
        better = (t_w < t_out) | ((t_w == t_out) & (f_w >= 0) & (f_w < face_out))
        t_out, face_out = torch.where(better, t_w, t_out), torch.where(better, f_w, face_out)
    return t_out.to(origins.dtype), face_out


__all__ = ["first_hits_through_point", "first_hits_torch"]
