"""Mesh extraction from unsigned distance + direction, on exact fields of known shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from equivision.data.procedural import make_shape
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.geometry import sample_surface_uniform
from equivision.recon.extract import _PATTERN_COUNTS, _PATTERN_TRIS, extract_mesh_udf, field_surface_points


def sphere_displacement(r: float):
    def disp(q: torch.Tensor) -> torch.Tensor:
        n = q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (r - n) * q / n

    return disp


def sdf_displacement(shape):
    """Exact displacement of a procedural shape: −sdf(q) ∇sdf(q) (autograd gradient)."""

    def disp(q: torch.Tensor) -> torch.Tensor:
        x = q.detach().double().requires_grad_(True)
        d = shape.sdf(x)
        (g,) = torch.autograd.grad(d.sum(), x)
        return (-d[:, None] * torch.nn.functional.normalize(g, dim=1)).detach()

    return disp


def square_displacement(half: float):
    """Nearest point on the flat square |x|, |y| ≤ half, z = 0 (an open surface)."""

    def disp(q: torch.Tensor) -> torch.Tensor:
        target = q.clone()
        target[:, :2] = q[:, :2].clamp(-half, half)
        target[:, 2] = 0
        return target - q

    return disp


def test_pattern_table_is_a_valid_marching_tetrahedra_table():
    # patterns that are exact cuts give 1 triangle (3 crossed edges from one vertex) or
    # 2 (a 2|2 cut, 4 crossed edges); the empty pattern gives nothing
    assert _PATTERN_COUNTS[0] == 0
    for pattern in range(64):
        crossed = {i for i in range(6) if (pattern >> i) & 1}
        used = {int(e) for e in _PATTERN_TRIS[pattern].ravel() if e >= 0}
        if _PATTERN_COUNTS[pattern] and len(crossed) in (3, 4) and used == crossed:
            assert _PATTERN_COUNTS[pattern] == len(crossed) - 2


def test_sphere_is_closed_and_on_the_surface():
    r = 0.3
    pts = (
        torch.nn.functional.normalize(
            torch.randn(4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=1
        )
        * r
    )
    mesh, stats = extract_mesh_udf(sphere_displacement(r), pts, resolution=48, projection="field")
    tm = mesh.to_trimesh()
    assert tm.is_watertight
    assert float((mesh.vertices.norm(dim=-1) - r).abs().max()) < 1e-6  # projected onto it
    # the default moves most vertices onto the end nodes' tangent planes: second order in the
    # voxel h (h² / 2r = 0.04 h here), the same faces
    fast, fast_stats = extract_mesh_udf(sphere_displacement(r), pts, resolution=48)
    assert torch.equal(fast.faces, mesh.faces) and fast_stats.projected_by_field < 0.05 * len(fast.vertices)
    assert float((fast.vertices.norm(dim=-1) - r).abs().max()) < 0.04 * stats.voxel
    assert abs(tm.area - 4 * np.pi * r**2) / (4 * np.pi * r**2) < 0.01
    assert stats.faces == len(mesh.faces) and stats.voxel == pytest.approx(1.1 / 47)


@pytest.mark.parametrize("family", ["box", "torus"])
def test_procedural_shapes_match_their_surface(family):
    shape = make_shape(family, 0)
    ref = shape.mesh(96)
    pts, _ = sample_surface_uniform(ref, 6000, seed=0)
    mesh, stats = extract_mesh_udf(sdf_displacement(shape), pts.double(), resolution=64)
    # accuracy: the extracted surface lies on the true one (its exact SDF vanishes there)
    a, _ = sample_surface_uniform(mesh, 20000, seed=1)
    acc = shape.sdf(a.double()).abs() / stats.voxel
    assert float(acc.mean()) < 0.02 and float(acc.max()) < 0.3  # faces cut sharp edges a little
    # completeness: every part of the reference surface is close to the extracted mesh
    b, _ = sample_surface_uniform(ref, 5000, seed=2)
    _, comp, _ = trimesh.proximity.closest_point(mesh.to_trimesh(), b.numpy())
    assert comp.mean() / stats.voxel < 0.05 and comp.max() / stats.voxel < 0.5
    # closed up to a few tiny holes where a voxel-sized rounded edge makes the direction field
    # ambiguous (at most 0.05% of the edges are boundary edges)
    tm = mesh.to_trimesh()
    _, counts = np.unique(tm.edges_sorted, axis=0, return_counts=True)
    assert (counts != 2).sum() <= 5e-4 * len(counts)
    if family == "torus":
        assert tm.is_watertight


def test_open_square_stays_open_without_spurious_faces():
    half = 0.3
    g = torch.Generator().manual_seed(0)
    pts = torch.cat(
        [
            (torch.rand(4000, 2, generator=g, dtype=torch.float64) * 2 - 1) * half,
            torch.zeros(4000, 1, dtype=torch.float64),
        ],
        1,
    )
    mesh, _ = extract_mesh_udf(square_displacement(half), pts, resolution=64)
    v = mesh.vertices
    assert float(v[:, 2].abs().max()) < 1e-9  # every face lies in the plane
    assert float(v[:, :2].abs().max()) <= half + 1e-9  # nothing beyond the boundary
    tm = mesh.to_trimesh()
    assert not tm.is_watertight  # open, with a boundary
    assert abs(tm.area - (2 * half) ** 2) / (2 * half) ** 2 < 0.06


def test_two_close_parallel_sheets_make_no_faces_between_them():
    """Between the sheets the direction flips at the medial plane z = 0: a naive sign test
    would put a surface there. The |Δa| + |Δb| ≤ edge test must not."""
    gap = 0.06

    def disp(q):
        target = q.clone()
        target[:, 2] = torch.where(q[:, 2] >= 0, gap / 2, -gap / 2)
        return target - q

    g = torch.Generator().manual_seed(1)
    xy = (torch.rand(6000, 2, generator=g, dtype=torch.float64) * 2 - 1) * 0.3
    z = torch.where(torch.rand(6000, generator=g) < 0.5, gap / 2, -gap / 2).double()
    pts = torch.cat([xy, z[:, None]], 1)
    mesh, _ = extract_mesh_udf(disp, pts, resolution=96)
    assert float((mesh.vertices[:, 2].abs() - gap / 2).abs().max()) < 1e-9


def test_bad_fields_and_inputs():
    pts = torch.randn(100, 3, dtype=torch.float64) * 0.1
    with pytest.raises(InvalidInputError, match="NaN"):
        extract_mesh_udf(lambda q: q * float("nan"), pts, resolution=16)
    with pytest.raises(InvalidInputError, match="expected"):
        extract_mesh_udf(lambda q: q[:, :2], pts, resolution=16)
    with pytest.raises(DegenerateGeometryError, match="bounds"):
        extract_mesh_udf(sphere_displacement(0.1), pts + 10, resolution=16)
    with pytest.raises(DegenerateGeometryError, match="no surface"):
        extract_mesh_udf(lambda q: torch.ones_like(q), pts, resolution=16)  # not a distance field
    with pytest.raises(InvalidInputError):
        extract_mesh_udf(sphere_displacement(0.1), pts, resolution=2)
    with pytest.raises(InvalidInputError):
        extract_mesh_udf(sphere_displacement(0.1), pts[:, :2], resolution=16)


def active_nodes_reference(points: torch.Tensor, lo: float, voxel: float, res: int,
                           band: float) -> np.ndarray:
    """The original candidate enumeration (a cube of offsets around every point): the oracle of
    the dense-grid dilation in ``extract._active_nodes``."""
    from scipy.spatial import cKDTree

    p = points.double().numpy()
    k = int(np.ceil(band / voxel))
    base = np.unique(np.floor((p - lo) / voxel).astype(np.int64), axis=0)
    offs = np.stack(np.meshgrid(*[np.arange(-k, k + 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cand = (base[:, None, :] + offs[None]).reshape(-1, 3)
    cand = cand[((cand >= 0) & (cand < res)).all(1)]
    flat = np.unique(cand[:, 0] * res * res + cand[:, 1] * res + cand[:, 2])
    ijk = np.stack([flat // (res * res), (flat // res) % res, flat % res], 1)
    dist, _ = cKDTree(p).query(lo + ijk * voxel, k=1)
    return np.sort(flat[dist <= band])


@pytest.mark.parametrize(("res", "band_voxels"), [(24, 2.5), (40, 3.2), (33, 1.0)])
def test_active_nodes_match_the_enumeration(res, band_voxels):
    from equivision.recon.extract import _active_nodes

    g = torch.Generator().manual_seed(res)
    pts = torch.rand(400, 3, generator=g, dtype=torch.float64) * 1.3 - 0.65  # some outside the grid
    lo, voxel = -0.55, 1.1 / (res - 1)
    got = _active_nodes(pts, lo, voxel, res, band_voxels * voxel)
    want = active_nodes_reference(pts, lo, voxel, res, band_voxels * voxel)
    assert np.array_equal(got, want) and len(got) > 0


@pytest.mark.parametrize("family", ["capsule", "torus"])
def test_adaptive_projection_matches_querying_every_vertex(family):
    """The adaptive rule (tangent planes of the end nodes where they agree) gives the same
    surface as querying the field at every vertex, with far fewer queries."""
    shape = make_shape(family, 0)
    pts, _ = sample_surface_uniform(shape.mesh(64), 4000, seed=0)
    counts = {}
    meshes = {}
    for mode in ("field", "adaptive"):
        n = [0]
        field = sdf_displacement(shape)

        def counted(q, field=field, n=n):
            n[0] += len(q)
            return field(q)

        meshes[mode], stats = extract_mesh_udf(counted, pts.double(), resolution=48, projection=mode)
        counts[mode] = n[0]
        # every vertex lies on the surface to a small fraction of the voxel (second order in
        # the voxel for the tangent planes: the torus's tube is only ~4 voxels thick here)
        sdf = shape.sdf(meshes[mode].vertices.double()).abs()
        assert float(sdf.max()) < (0.1 if mode == "adaptive" else 1e-3) * stats.voxel
    assert counts["adaptive"] < 0.75 * counts["field"]
    a, b = meshes["adaptive"], meshes["field"]
    assert torch.equal(a.faces, b.faces)  # same topology: only vertex positions may differ
    assert float((a.vertices - b.vertices).norm(dim=-1).max()) < 0.1 * 1.1 / 47
    with pytest.raises(InvalidInputError, match="projection"):
        extract_mesh_udf(sphere_displacement(0.3), pts.double(), resolution=16, projection="nope")


def half_sphere_points(r: float, n: int = 3000) -> torch.Tensor:
    p = torch.nn.functional.normalize(
        torch.randn(n, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64), dim=1) * r
    return p[p[:, 2] > 0.05]


def test_field_surface_points_lie_on_the_fields_surface_everywhere():
    r = 0.3
    surf = field_surface_points(sphere_displacement(r), resolution=32, dtype=torch.float64)
    # the coarse mesh's vertices, unprojected: on the sphere to a small part of the voxel
    assert float((surf.norm(dim=-1) - r).abs().max()) < 0.05 * 1.1 / 31
    # a field whose distances are all too small (by 5x) still puts them on its surface
    shrunk = field_surface_points(lambda q: 0.2 * sphere_displacement(r)(q), resolution=32,
                                  dtype=torch.float64)
    assert float((shrunk.norm(dim=-1) - r).abs().max()) < 0.05 * 1.1 / 31
    # all around the sphere, not only where some cloud is: every octant holds samples
    octant = (surf > 0).long() @ torch.tensor([1, 2, 4])
    assert set(octant.tolist()) == set(range(8))
    with pytest.raises(InvalidInputError):
        field_surface_points(sphere_displacement(r), resolution=2)
    with pytest.raises(InvalidInputError, match="NaN"):
        field_surface_points(lambda q: q * float("nan"), resolution=8)


def test_band_points_extract_what_the_field_completes_beyond_the_cloud():
    r = 0.3
    pts = half_sphere_points(r)  # the upper half only
    near, _ = extract_mesh_udf(sphere_displacement(r), pts, resolution=48)
    assert float(near.vertices[:, 2].min()) > -0.05  # only near the points: an open cap
    surf = field_surface_points(sphere_displacement(r), resolution=48, dtype=torch.float64)
    whole, _ = extract_mesh_udf(sphere_displacement(r), pts, resolution=48,
                                band_points=torch.cat([pts, surf]))
    assert whole.to_trimesh().is_watertight
    assert float(whole.vertices[:, 2].min()) < -0.95 * r
    with pytest.raises(InvalidInputError, match="band_points"):
        extract_mesh_udf(sphere_displacement(r), pts, resolution=16, band_points=pts[None])


def test_pipeline_band_from_field_completes_a_half_cloud():
    """The fitted sphere of a half cloud as the field (in the cloud's unit-box coordinates):
    with ``band_from_field`` the whole sphere comes back, in the cloud's own coordinates,
    though half of it lies outside the half cloud's unit box."""
    from equivision.pipelines.reconstruct import reconstruct_with_field

    r = 0.3
    pts = half_sphere_points(r)

    def make_field(unit: torch.Tensor):
        u = unit.double()  # least-squares sphere: |x|² = 2 c·x + (r² − |c|²)
        a = torch.cat([2 * u, torch.ones(len(u), 1, dtype=u.dtype)], 1)
        sol = torch.linalg.lstsq(a, u.square().sum(1, keepdim=True)).solution[:, 0]
        c, rad = sol[:3], (sol[3] + sol[:3].square().sum()).sqrt()
        return lambda q: sphere_displacement(float(rad))(q.double() - c)

    cap = reconstruct_with_field(pts, make_field, resolution=48, align_grid=False)
    full = reconstruct_with_field(pts, make_field, resolution=48, align_grid=False, band_from_field=True)
    assert float(cap.mesh.vertices[:, 2].min()) > -0.05
    v = full.mesh.vertices.double()
    assert full.mesh.to_trimesh().is_watertight
    assert float(v[:, 2].min()) < -0.95 * r
    # on the sphere to the tangent-plane projection's second order (as on the whole cloud)
    assert float((v.norm(dim=-1) - r).abs().max()) < 0.04 * full.stats.voxel
    assert full.stats.voxel == pytest.approx(cap.stats.voxel, rel=0.02)  # the same voxel
