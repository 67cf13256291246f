"""The tangent-plane face filter: PCA normals and plane offsets against NumPy/SciPy references,
a sheet off the sampled surface dropped and the true one kept untouched, invariance under
rigid motions, the pipeline option, bad input refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from _recon_fields import sphere_field
from scipy.spatial import cKDTree

from equivision.errors import DegenerateGeometryError, InvalidInputError, ShapeError
from equivision.groups import SE3
from equivision.io import Mesh
from equivision.pipelines.reconstruct import reconstruct_with_field
from equivision.recon.tangent_planes import (
    drop_faces_off_tangent_planes,
    point_normals,
    tangent_plane_offsets,
)
from equivision.testing import assert_equivariant


def _bumpy_cloud(n: int = 800, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)
    return d * (1 + 0.1 * torch.sin(3 * d[:, :1]) * torch.cos(2 * d[:, 1:2]))


def _numpy_normals(p: np.ndarray, k: int) -> np.ndarray:
    _, idx = cKDTree(p).query(p, k=k)
    out = np.empty_like(p)
    for i, nb in enumerate(idx):
        q = p[nb] - p[nb].mean(0)
        w, v = np.linalg.eigh(q.T @ q)
        out[i] = v[:, np.argmin(w)]
    return out


def test_normals_match_a_numpy_reference_up_to_sign() -> None:
    p = _bumpy_cloud()
    ours = point_normals(p, 10).numpy()
    ref = _numpy_normals(p.numpy(), 10)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-12)
    assert np.abs(np.abs((ours * ref).sum(1)) - 1).max() < 1e-10


def test_normals_of_a_flat_square_are_its_axis() -> None:
    # a grid: the two in-plane eigenvalues are equal, the case the closed form would risk
    xy = torch.stack(torch.meshgrid(torch.linspace(0, 1, 20), torch.linspace(0, 1, 20), indexing="ij"), -1)
    p = torch.cat([xy.reshape(-1, 2), torch.full((400, 1), 0.3)], 1).double()
    n = point_normals(p)
    assert torch.allclose(n[:, 2].abs(), torch.ones(400, dtype=torch.float64), atol=1e-12)


def test_offsets_match_a_brute_force_reference() -> None:
    p = _bumpy_cloud(400)
    n = point_normals(p)
    g = torch.Generator().manual_seed(1)
    v = p[:300] * 1.02 + 0.01 * torch.randn(300, 3, generator=g, dtype=torch.float64)
    for m in (1, 3):
        ours = tangent_plane_offsets(v, p, n, m).numpy()
        dist = np.linalg.norm(v.numpy()[:, None] - p.numpy()[None], axis=-1)
        near = np.argsort(dist, axis=1)[:, :m]
        ref = np.abs(np.einsum("vmi,vmi->vm", v.numpy()[:, None] - p.numpy()[near], n.numpy()[near])).min(1)
        assert np.allclose(ours, ref, atol=1e-12)
    one, three = (tangent_plane_offsets(v, p, n, m) for m in (1, 3))
    assert bool((three <= one + 1e-15).all())  # more neighbours only forgive more


def _sphere_and_inner_sheet() -> tuple[Mesh, Mesh, torch.Tensor]:
    """A sampled unit sphere's mesh, and the same with a spurious sheet (a cap of a sphere of
    radius 0.95) inside it, as the field leaves inside thin plates."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    outer = Mesh.from_trimesh(sphere)
    cap = trimesh.creation.icosphere(subdivisions=3)
    keep = cap.triangles_center[:, 2] > 0.5
    cap.update_faces(keep)
    cap.remove_unreferenced_vertices()
    inner = Mesh(torch.as_tensor(cap.vertices * 0.95, dtype=torch.float64), torch.as_tensor(cap.faces))
    both = Mesh(torch.cat([outer.vertices.double(), inner.vertices]),
                torch.cat([outer.faces, inner.faces + len(outer.vertices)]))
    pts, _ = trimesh.sample.sample_surface(sphere, 4000, seed=0)
    return outer, both, torch.as_tensor(pts, dtype=torch.float64)


def test_the_sheet_inside_goes_and_the_surface_stays_untouched() -> None:
    outer, both, pts = _sphere_and_inner_sheet()
    out = drop_faces_off_tangent_planes(both, pts, 0.02)  # the sheet is 0.05 off
    assert torch.equal(out.faces, outer.faces)
    assert torch.equal(out.vertices, outer.vertices.double())
    # a limit above the sheet's offset keeps it
    assert len(drop_faces_off_tangent_planes(both, pts, 0.08).faces) == len(both.faces)


def test_the_filter_commutes_with_rigid_motions() -> None:
    _, both, pts = _sphere_and_inner_sheet()
    n_faces = len(drop_faces_off_tangent_planes(both, pts, 0.02).faces)
    assert 0 < n_faces < len(both.faces)

    def fn(x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out = drop_faces_off_tangent_planes(Mesh(x[0], both.faces), x[1], 0.02)
        assert len(out.faces) == n_faces  # the same faces survive in every pose
        return out.vertices

    def act_in(g: torch.Tensor, x: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        r, t = SE3.to_rt(g)
        return x[0] @ r.T + t, x[1] @ r.T + t

    def act_out(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r, t = SE3.to_rt(g)
        return y @ r.T + t

    # exact up to float64 rounding (vertices are kept, not moved)
    assert_equivariant(fn, (both.vertices, pts), act_in, act_out,
                       SE3().random(3, seed=2, dtype=torch.float64), tol=1e-12)


def test_the_pipeline_option_keeps_an_exact_surface_whole() -> None:
    # on an exact field every vertex is on the sampled surface: nothing may go
    g = torch.Generator().manual_seed(0)
    pts = torch.nn.functional.normalize(torch.randn(3000, 3, generator=g, dtype=torch.float64), dim=1)
    plain = reconstruct_with_field(pts, sphere_field, resolution=32)
    kept = reconstruct_with_field(pts, sphere_field, resolution=32, plane_filter=0.5)
    assert torch.equal(plain.mesh.faces, kept.mesh.faces)
    assert torch.equal(plain.mesh.vertices, kept.mesh.vertices)
    assert kept.faces_off_planes == 0 and plain.faces_off_planes == 0
    assert kept.mesh.to_trimesh().is_watertight


def test_bad_input_is_refused() -> None:
    p = _bumpy_cloud(50)
    with pytest.raises(InvalidInputError, match="k must"):
        point_normals(p, 2)
    with pytest.raises(DegenerateGeometryError, match="fewer"):
        point_normals(p[:5], 10)
    bad = p.clone()
    bad[0, 0] = math.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        point_normals(bad)
    with pytest.raises(ShapeError, match="match"):
        tangent_plane_offsets(p, p, point_normals(p)[:10])
    with pytest.raises(InvalidInputError, match="neighbours"):
        tangent_plane_offsets(p, p, point_normals(p), 0)
    mesh = Mesh(p[:3], torch.tensor([[0, 1, 2]]))
    for v in (0.0, -1.0, math.nan):
        with pytest.raises(InvalidInputError, match="max_offset"):
            drop_faces_off_tangent_planes(mesh, p, v)
    for v in (-0.5, math.inf, math.nan, "0.5", True):
        with pytest.raises(InvalidInputError, match="plane_filter"):
            reconstruct_with_field(p, sphere_field, resolution=8, plane_filter=v)
    for n in (0, True, 1.5):
        with pytest.raises(InvalidInputError, match="plane_filter_neighbours"):
            reconstruct_with_field(p, sphere_field, resolution=8, plane_filter=0.5,
                                   plane_filter_neighbours=n)  # type: ignore[arg-type]


def test_reconstruct_filters_peif_by_default_and_not_the_global_field(monkeypatch) -> None:
    import equivision.pipelines.reconstruct as pipeline
    from equivision.models.peif import PEIFConfig, PEIFNet
    from equivision.models.vn_global_field import VNGlobalField, VNGlobalFieldConfig

    calls: list[tuple[float, int]] = []
    real = pipeline.drop_faces_off_tangent_planes

    def spy(mesh, points, max_offset, *, neighbours=1, **kw):
        calls.append((max_offset, neighbours))
        return real(mesh, points, max_offset, neighbours=neighbours, **kw)

    monkeypatch.setattr(pipeline, "drop_faces_off_tangent_planes", spy)
    torch.manual_seed(0)
    peif = PEIFNet(PEIFConfig(k=8, feature_dim=8, top_k=2, memory_heads=1, memory_items=4,
                              mlp_a=[16], mlp_d=[16]))
    pts = _bumpy_cloud(400).float()
    # the count it reports: extracted faces less those left when no small piece is dropped
    rec = pipeline.reconstruct(pts, peif, resolution=16, min_piece_fraction=0.0, fill_holes=0)
    assert rec.faces_off_planes > 0
    assert len(rec.mesh.faces) == rec.stats.faces - rec.faces_off_planes
    calls.clear()
    rec = pipeline.reconstruct(pts, peif, resolution=16)
    assert calls == [(pytest.approx(pipeline.PEIF_PLANE_FILTER * rec.stats.voxel), 3)]
    assert pipeline.PEIF_PLANE_FILTER == 0.5
    calls.clear()
    pipeline.reconstruct(pts, peif, resolution=16, plane_filter=0.0)
    assert calls == []
    # an untrained global field extracts no surface at this size: read what the pipeline asks for
    seen: dict = {}
    monkeypatch.setattr(pipeline, "reconstruct_with_field", lambda *a, **kw: seen.update(kw))
    vn = VNGlobalField(VNGlobalFieldConfig(k=8, channels=[4, 8, 16], latent=8, frame_channels=3, hidden=32,
                                           blocks=2))
    pipeline.reconstruct(pts, vn, resolution=16)
    assert seen["plane_filter"] == 0.0
    pipeline.reconstruct(pts, peif, resolution=16)
    assert seen["plane_filter"] == 0.5 and seen["plane_filter_neighbours"] == 3
