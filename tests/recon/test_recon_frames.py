"""K-NN patches and canonical local frames: oracles, SE(3) equivariance with the harness, and
every documented degenerate case, on each device in float32 and float64 (frames are computed
in float64 whatever the input and returned in its dtype and on its device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _devices import tol
from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.groups import SE3
from equivision.recon import (
    AXIS1_FROM_ANCHOR,
    AXIS2_FROM_ANCHOR,
    REGULAR,
    UNDETERMINED,
    USED_QUERY,
    canonical_patches,
    knn_indices,
    local_frames,
    points_from_frame,
    points_to_frame,
    remove_duplicate_points,
    vectors_from_frame,
    vectors_to_frame,
)
from equivision.testing import assert_equivariant


def eq_tol(dtype: torch.dtype) -> float:
    """Relative equivariance bound. Measured worst over the tests below: float32 3.9e-6,
    float64 2.1e-14 (exact up to rounding; the degenerate patches are the largest)."""
    return tol(dtype, f32=1e-4, f64=1e-12)


def elements(device: str, dtype: torch.dtype) -> torch.Tensor:
    return SE3().random(6, seed=11, dtype=dtype, device=device)


def act_points(g, x):
    """SE(3) acting on a tuple of point tensors (cloud and queries move together)."""
    r, t = SE3.to_rt(g)
    return tuple(y @ r.T + t for y in x)


def act_frames(g, y):
    r, t = SE3.to_rt(g)
    return {"mu": y["mu"] @ r.T + t, "U": r @ y["U"]}


def frames_of(x):
    f = local_frames(x[0], x[1])
    return {"mu": f.centroids, "U": f.rotations}


def canonical_of(x):
    f = local_frames(x[0], x[1])
    return {"P": points_to_frame(x[0], f), "q": points_to_frame(x[1], f)}


def _surface_cloud(n=3000, seed=0, device="cpu", dtype=torch.float32):
    """Points on a bumpy closed surface (a realistic cloud), and queries near it (the same
    float32 samples for every dtype and device)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    r = 0.5 + 0.08 * torch.sin(5 * d[:, 0]) * torch.cos(3 * d[:, 1])
    cloud = d * r[:, None] * torch.tensor([1.0, 0.7, 0.5])
    m = min(n, 400)
    q = cloud[:m] + 0.02 * torch.randn(m, 3, generator=g)
    return cloud.to(device, dtype), q.to(device, dtype)


# ----- K-NN ----------------------------------------------------------------------------------------
def test_knn_matches_brute_force_and_torch_path(device, dtype):
    cloud, q = _surface_cloud(device=device, dtype=dtype)
    brute = torch.cdist(q.cpu().double(), cloud.cpu().double()).argsort(dim=1)[:, :16]
    kd = knn_indices(cloud, q, 16, method="kdtree")
    th = knn_indices(cloud, q, 16, method="torch", chunk_size=64)
    assert kd.shape == (400, 16) and kd.dtype == th.dtype == torch.long
    assert kd.device.type == th.device.type == device
    assert torch.equal(kd.cpu(), brute)
    assert torch.equal(th.cpu().sort(1).values, brute.sort(1).values)
    assert knn_indices(cloud, q[:0], 4).shape == (0, 4)
    assert knn_indices(cloud, q, 1).shape == (400, 1)


def test_knn_bad_input():
    cloud, q = _surface_cloud(100)
    with pytest.raises(DegenerateGeometryError, match="fewer than the patch size"):
        knn_indices(cloud[:10], q, 32)
    bad = cloud.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        knn_indices(bad, q, 8)
    q_inf = q.clone()
    q_inf[0, 0] = float("inf")
    with pytest.raises(InvalidInputError):
        knn_indices(cloud, q_inf, 8)
    with pytest.raises(ShapeError):
        knn_indices(cloud[:, :2], q, 8)
    with pytest.raises(InvalidInputError):
        knn_indices(cloud, q, 0)
    with pytest.raises(InvalidInputError):
        knn_indices(cloud, q, 8, method="octree")  # type: ignore[arg-type]


def test_remove_duplicate_points():
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((50, 3)))
    pts = torch.cat([base, base[:10], base[:3]])[torch.from_numpy(rng.permutation(63))]
    kept, idx = remove_duplicate_points(pts)
    assert len(kept) == 50 and torch.equal(pts[idx], kept)
    assert idx.tolist() == sorted(idx.tolist())
    assert len(torch.unique(kept, dim=0)) == 50
    # within a tolerance: a near-copy goes, the rest stays; brute force says who is too close
    near = torch.cat([base, base[:5] + 1e-7])
    kept, idx = remove_duplicate_points(near, tol=1e-5)
    assert idx.tolist() == list(range(50))
    d = torch.cdist(kept, kept) + torch.eye(len(kept))
    assert float(d.min()) > 1e-5


# ----- frames: oracle -------------------------------------------------------------------------------
def test_regular_frames_match_numpy_eigh_and_the_anchor_rule(device, dtype):
    cloud, q = _surface_cloud(device=device, dtype=dtype)
    c = canonical_patches(cloud, q, 32)
    assert c.frames.rotations.dtype == dtype and c.frames.rotations.device.type == device
    patches = cloud[c.indices].cpu().double().numpy()
    u = c.frames.rotations.cpu().double().numpy()
    lam_c = c.frames.eigenvalues.cpu().double().numpy()
    status = c.frames.status.cpu().numpy()
    # computed in float64 from the same coordinates; float32 only rounds the result
    atol = tol(dtype, f32=1e-6, f64=1e-9)
    assert (status == REGULAR).mean() > 0.9
    checked = 0
    for i in np.flatnonzero(status == REGULAR)[:100]:
        p = patches[i]
        d = p - p.mean(0)
        lam, vec = np.linalg.eigh(d.T @ d / len(p))
        vec = vec[:, ::-1]
        far = d[np.argmax(np.linalg.norm(d, axis=1))]  # the anchor (slow, independent)
        for a in range(2):
            e = vec[:, a] * np.sign(far @ vec[:, a])
            np.testing.assert_allclose(u[i][:, a], e, atol=atol)
        np.testing.assert_allclose(u[i][:, 2], np.cross(u[i][:, 0], u[i][:, 1]),
                                   atol=tol(dtype, f32=1e-6, f64=1e-12))
        np.testing.assert_allclose(lam_c[i], lam[::-1], atol=tol(dtype, f32=1e-9, f64=1e-12))
        checked += 1
    assert checked == 100


def test_frames_are_rotations_and_maps_invert(device, dtype):
    cloud, q = _surface_cloud(device=device, dtype=dtype)
    c = canonical_patches(cloud, q, 32)
    atol = tol(dtype, f32=1e-6, f64=1e-12)  # float64 measured: 6.7e-16
    for t in (c.patches, c.queries, *vars(c.frames).values()):
        assert t.device.type == device
    assert c.patches.dtype == c.queries.dtype == c.frames.rotations.dtype == dtype
    u = c.frames.rotations.double()
    eye = torch.eye(3, dtype=torch.float64, device=device).expand_as(u)
    assert torch.allclose(u.transpose(1, 2) @ u, eye, atol=atol)
    assert torch.allclose(torch.linalg.det(u), torch.ones_like(u[:, 0, 0]), atol=atol)
    patches = cloud[c.indices]
    assert torch.allclose(points_from_frame(c.patches, c.frames), patches, atol=atol)
    assert torch.allclose(points_from_frame(c.queries, c.frames), q, atol=atol)
    v = torch.randn(len(q), 3, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    assert torch.allclose(vectors_from_frame(vectors_to_frame(v, c.frames), c.frames), v, atol=atol)
    # the centroid is the patch mean, so canonical patches are centred
    assert c.patches.mean(1).abs().max() < atol
    with pytest.raises(ShapeError):
        points_to_frame(torch.zeros(5, 7, 2, 3), c.frames)


def test_chunking_and_batch_shapes_do_not_change_frames(device, dtype):
    cloud, q = _surface_cloud(device=device, dtype=dtype)
    c = canonical_patches(cloud, q, 16)
    patches = cloud[c.indices]
    small = local_frames(patches, q, chunk_size=7)
    assert torch.equal(small.rotations, c.frames.rotations)
    batched = local_frames(patches.reshape(20, 20, 16, 3), q.reshape(20, 20, 3))
    assert batched.rotations.shape == (20, 20, 3, 3) and batched.status.shape == (20, 20)
    assert torch.equal(batched.rotations.reshape(-1, 3, 3), c.frames.rotations)


def test_frames_are_scale_free():
    """Tolerances are relative, so enormous or tiny coordinates give the same frames (float64,
    CPU: the sweep's other cases add nothing to a property of the float64 arithmetic)."""
    cloud, q = _surface_cloud()
    c = canonical_patches(cloud.double(), q.double(), 32)
    patches = cloud.double()[c.indices]
    for s in (1e-6, 1e6):
        f = local_frames(patches * s, q.double() * s)
        assert torch.allclose(f.rotations, c.frames.rotations, atol=1e-9)
        assert torch.equal(f.status, c.frames.status)


# ----- frames: SE(3) equivariance (the harness) ----------------------------------------------------
def test_knn_canonical_patches_are_invariant_and_frames_equivariant(device, dtype):
    cloud, q = _surface_cloud(device=device, dtype=dtype)
    els, t = elements(device, dtype), eq_tol(dtype)

    def frames_knn(x):
        c = canonical_patches(x[0], x[1], 32)
        return {"mu": c.frames.centroids, "U": c.frames.rotations}

    def canonical_sets(x):
        # near-ties in distance may reorder a patch under rotation, so compare each patch's
        # points in the order of their cloud indices (the set, not the K-NN order)
        c = canonical_patches(x[0], x[1], 32)
        order = c.indices.argsort(dim=1)
        return {"P": c.patches.gather(1, order[..., None].expand(-1, -1, 3)), "q": c.queries}

    assert_equivariant(frames_knn, (cloud, q), act_points, act_frames, els, tol=t)
    assert_equivariant(canonical_sets, (cloud, q), act_points, None, els, tol=t)


def test_displacements_predicted_in_the_frame_are_equivariant(device, dtype):
    """Any function of the canonical inputs, rotated back as a vector, is SE(3)-equivariant
    in the world (translations do not move a displacement)."""
    cloud, q = _surface_cloud(device=device, dtype=dtype)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(16 * 3 + 3, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 3)).to(device, dtype)

    def predict(x):
        c = canonical_patches(x[0], x[1], 16)
        order = c.indices.argsort(dim=1)  # the set, as in the test above
        p = c.patches.gather(1, order[..., None].expand(-1, -1, 3))
        return vectors_from_frame(mlp(torch.cat([p.flatten(1), c.queries], 1)), c.frames)

    def rotate_only(g, y):
        return y @ SE3.to_rt(g)[0].T

    assert predict((cloud, q)).dtype == dtype
    els = elements(device, dtype)
    assert_equivariant(predict, (cloud, q), act_points, rotate_only, els, tol=eq_tol(dtype))


def _whiten(p: torch.Tensor, dims: int) -> torch.Tensor:
    """Make the covariance of ``p (K, 3)`` exactly isotropic in its first ``dims`` axes."""
    p = p - p.mean(0)
    sub = p[:, :dims]
    lam, vec = torch.linalg.eigh(sub.T @ sub / len(p))
    p = p.clone()
    p[:, :dims] = sub @ vec @ torch.diag(lam.rsqrt()) @ vec.T * 0.1
    return p


def _degenerate_patches(seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Built and whitened in float64, then cast (float32 rounding keeps every degeneracy)."""
    g = torch.Generator().manual_seed(seed)
    k = 24
    flat_aniso = torch.randn(k, 3, generator=g, dtype=torch.float64) * torch.tensor([0.1, 0.05, 0.0])
    flat_iso = _whiten(torch.randn(k, 3, generator=g, dtype=torch.float64) * torch.tensor([1, 1, 0.0]), 2)
    line = torch.randn(k, 1, generator=g, dtype=torch.float64) * torch.tensor([[0.1, 0.0, 0.0]])
    blob = _whiten(torch.randn(k, 3, generator=g, dtype=torch.float64), 3)
    rod = line + 5e-3 * torch.randn(k, 3, generator=g, dtype=torch.float64)
    patches = torch.stack([flat_aniso, flat_iso, line, blob, rod])
    patches = patches + torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    queries = patches.mean(1) + torch.tensor([0.02, 0.03, 0.05], dtype=torch.float64)
    return patches.to(device, dtype), queries.to(device, dtype)


def test_degenerate_patches_follow_the_documented_rules_and_stay_equivariant(device, dtype):
    patches, queries = _degenerate_patches(device=device, dtype=dtype)
    f = local_frames(patches, queries)
    assert f.rotations.dtype == dtype and f.status.device.type == device
    st = f.status.tolist()
    assert st[0] == REGULAR  # flat but anisotropic: e₁, e₂ are fixed, u₃ = u₁ × u₂ the normal
    assert st[1] & AXIS1_FROM_ANCHOR and st[1] & AXIS2_FROM_ANCHOR  # λ₁ = λ₂
    assert st[2] & AXIS2_FROM_ANCHOR and st[2] & USED_QUERY  # a line: u₂ towards the query
    assert st[3] & AXIS1_FROM_ANCHOR  # λ₁ = λ₂ = λ₃
    assert st[4] & AXIS2_FROM_ANCHOR and not st[4] & USED_QUERY  # a rod: u₂ from its points
    assert not any(s & UNDETERMINED for s in st)
    # flat patches: the third axis is the plane's normal (for the isotropic one, it is
    # signed towards the query, since u₁ from the anchor and n decide u₂ = n × u₁)
    for i in (0, 1):
        assert abs(float(f.rotations[i, 2, 2])) == pytest.approx(1.0, abs=1e-5)
    assert float(f.rotations[1, :, 2] @ (queries[1] - f.centroids[1])) > 0
    assert st[1] & USED_QUERY
    # a line: the first axis is the line
    assert abs(float(f.rotations[2, 0, 0])) == pytest.approx(1.0, abs=1e-5)
    els, t = elements(device, dtype), eq_tol(dtype)
    assert_equivariant(frames_of, (patches, queries), act_points, act_frames, els, tol=t)
    assert_equivariant(canonical_of, (patches, queries), act_points, None, els, tol=t)


def test_repeated_points_are_flagged_and_inputs_stay_invariant(device, dtype):
    kw = {"dtype": dtype, "device": device}
    p = torch.tensor([0.2, 0.1, -0.3], **kw).expand(1, 16, 3).clone()
    q = torch.tensor([[0.25, 0.1, -0.3]], **kw)
    atol = tol(dtype, f32=1e-6, f64=1e-12)
    f = local_frames(p, q)
    assert int(f.status[0]) & UNDETERMINED and int(f.status[0]) & USED_QUERY
    assert torch.allclose(f.rotations[0, :, 0], torch.tensor([1.0, 0, 0], **kw), atol=atol)  # to the query
    c = canonical_of((p, q))
    assert torch.allclose(c["q"], torch.tensor([[0.05, 0, 0]], **kw), atol=atol)
    assert c["P"].abs().max() == 0
    assert_equivariant(canonical_of, (p, q), act_points, None, elements(device, dtype), tol=eq_tol(dtype))
    # without a query nothing decides the frame: still a rotation, flagged
    f = local_frames(p)
    assert int(f.status[0]) & UNDETERMINED
    assert torch.allclose(torch.linalg.det(f.rotations), torch.ones(1, **kw), atol=atol)


def test_local_frames_bad_input():
    p = torch.randn(4, 8, 3)
    with pytest.raises(ShapeError):
        local_frames(torch.randn(4, 8, 2))
    with pytest.raises(ShapeError):
        local_frames(p, torch.randn(5, 3))
    with pytest.raises(InvalidInputError):
        local_frames(p.long())
    bad = p.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        local_frames(bad)
    with pytest.raises(InvalidInputError):
        local_frames(p, gap_tol=0)
    # queries on another device (a data-less "meta" tensor stands in for an accelerator)
    with pytest.raises(InvalidInputError, match="device"):
        local_frames(p, torch.randn(4, 3).to("meta"))


def test_an_empty_batch_keeps_dtype_and_device(device, dtype):
    empty = local_frames(torch.zeros(2, 0, 8, 3, dtype=dtype, device=device))
    assert empty.rotations.shape == (2, 0, 3, 3) and empty.status.shape == (2, 0)
    assert empty.rotations.dtype == empty.centroids.dtype == dtype and empty.status.dtype == torch.int16
    assert all(t.device.type == device for t in vars(empty).values())
