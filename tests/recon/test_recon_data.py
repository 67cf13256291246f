"""Closest points on meshes (against SciPy and brute force) and training-data preparation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from equivision.data.procedural import sdf_box
from equivision.errors import (
    CorruptFileError,
    DataFileNotFoundError,
    DegenerateGeometryError,
    InvalidInputError,
)
from equivision.io import Mesh
from equivision.recon.closest import closest_points_on_mesh, closest_points_on_triangles
from equivision.recon.data import (
    PreparedShapes,
    PrepConfig,
    ShapeSource,
    load_prepared,
    mesh_file_sources,
    prepare_dataset,
    prepare_shape,
    procedural_sources,
    sample_input_cloud,
    sample_queries,
    shape_seed,
)

SMALL = PrepConfig(n_points=1500, n_queries=1200)


def _slsqp_closest(p, a, b, c):
    """Independent oracle: minimise |p − (a + s(b−a) + t(c−a))|² over the triangle."""
    from scipy.optimize import minimize

    def f(x):
        r = a + x[0] * (b - a) + x[1] * (c - a) - p
        return r @ r

    cons = [{"type": "ineq", "fun": lambda x: x[0]}, {"type": "ineq", "fun": lambda x: x[1]},
            {"type": "ineq", "fun": lambda x: 1 - x[0] - x[1]}]
    best = None
    for x0 in ([1 / 3, 1 / 3], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]):
        r = minimize(f, x0, constraints=cons, method="SLSQP", options={"ftol": 1e-15, "maxiter": 200})
        if best is None or r.fun < best.fun:
            best = r
    return np.sqrt(best.fun)


def test_point_triangle_distance_matches_constrained_optimisation():
    rng = np.random.default_rng(0)
    n = 60
    p, a, b, c = (rng.normal(size=(n, 3)) for _ in range(4))
    c[:10] = a[:10] + 1e-4 * rng.normal(size=(10, 3)) + 3 * (b[:10] - a[:10])  # thin triangles
    pt = closest_points_on_triangles(p, a, b, c)
    d = np.linalg.norm(p - pt, axis=1)
    oracle = np.array([_slsqp_closest(p[i], a[i], b[i], c[i]) for i in range(n)])
    np.testing.assert_allclose(d, oracle, atol=1e-6)
    # the point returned lies in the triangle's plane, within its barycentric range
    m = np.stack([b - a, c - a], -1)
    for i in range(n):
        st = np.linalg.lstsq(m[i], (pt - a)[i], rcond=None)[0]
        assert st.min() >= -1e-6 and st.sum() <= 1 + 1e-6
        assert np.linalg.norm(m[i] @ st - (pt - a)[i]) < 1e-9


def test_degenerate_triangles_are_their_edges():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(50, 3))
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    for c in (a + 0.5 * (b - a), a.copy()):  # collinear; a repeated vertex
        d = np.linalg.norm(p - closest_points_on_triangles(p, a, b, c), axis=1)
        t = np.clip(np.einsum("ij,ij->i", p - a, b - a) / np.einsum("ij,ij->i", b - a, b - a), 0, 1)
        np.testing.assert_allclose(d, np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1), atol=1e-12)
    point = closest_points_on_triangles(p, a, a.copy(), a.copy())  # all three vertices equal
    np.testing.assert_allclose(point, a)


def _skinny_mesh() -> Mesh:
    """A box of 12 large triangles (like ABC's CAD meshes) beside a fine sphere: faces of very
    different sizes, so the search goes through several radius classes."""
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.15)
    sphere.apply_translation((0.7, 0.0, 0.0))
    both = trimesh.util.concatenate([box, sphere])
    return Mesh.from_trimesh(both, torch.float64)


def test_mesh_closest_points_match_brute_force_and_an_exact_box_sdf():
    import trimesh

    mesh = _skinny_mesh()
    rng = np.random.default_rng(2)
    q = torch.from_numpy(rng.uniform(-0.8, 1.0, size=(600, 3)))
    pts, dist, face = closest_points_on_mesh(mesh, q)
    v, f = mesh.vertices.numpy(), mesh.faces.numpy()
    tri = v[f]
    corners = tri.transpose(1, 0, 2)

    def nearest(qq):
        pt = closest_points_on_triangles(np.repeat(qq[None], len(f), 0), *corners)
        return np.linalg.norm(qq - pt, axis=1)

    brute = np.stack([nearest(qq).min() for qq in q.numpy()])
    np.testing.assert_allclose(dist.numpy(), brute, rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch.linalg.vector_norm(pts - q, dim=1).numpy(), dist.numpy(), atol=1e-12)
    # the face returned holds the point
    on_face = closest_points_on_triangles(q.numpy(), *tri[face.numpy()].transpose(1, 0, 2))
    np.testing.assert_allclose(on_face, pts.numpy(), atol=1e-12)
    # a box alone: the distance is the box's exact |SDF|
    box = Mesh.from_trimesh(trimesh.creation.box(extents=(1.0, 0.6, 0.4)), torch.float64)
    _, d_box, _ = closest_points_on_mesh(box, q)
    exact = sdf_box(q, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)).abs()
    assert torch.allclose(d_box, exact, atol=1e-12)
    assert closest_points_on_mesh(box, q[:0])[0].shape == (0, 3)


def test_input_clouds_are_seeded_and_on_the_surface(sphere_mesh):
    a, na = sample_input_cloud(sphere_mesh, 3000, seed=5)
    b, _ = sample_input_cloud(sphere_mesh, 3000, seed=5)
    c, _ = sample_input_cloud(sphere_mesh, 3000, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    _, d, _ = closest_points_on_mesh(sphere_mesh, a)
    assert float(d.max()) < 1e-12
    assert torch.allclose(na.norm(dim=1), torch.ones(3000, dtype=na.dtype))
    noisy, _ = sample_input_cloud(sphere_mesh, 3000, noise=0.01, seed=5)
    assert float((noisy - a).std()) == pytest.approx(0.01, rel=0.05)
    # Poisson-disk ("blue") points are spread more evenly than uniform ones
    blue, _ = sample_input_cloud(sphere_mesh, 1000, density="blue", seed=5)
    uni, _ = sample_input_cloud(sphere_mesh, 1000, seed=5)

    def min_spacing(x):
        return float((torch.cdist(x, x) + torch.eye(len(x)) * 9).min())

    assert min_spacing(blue) > 3 * min_spacing(uni)
    # a varying density moves the centroid of a sphere's samples off its centre
    var, _ = sample_input_cloud(sphere_mesh, 3000, density="varying", varying_ratio=8, seed=5)
    assert float(var.mean(0).norm()) > 0.1 > float(uni.mean(0).norm()) * 3


def test_queries_follow_the_scales(sphere_mesh):
    q, idx = sample_queries(sphere_mesh, 1000, scales=(0.001, 0.05), ratios=(0.7, 0.3), seed=1)
    assert q.shape == (1000, 3) and idx.dtype == torch.int8
    assert int((idx == 0).sum()) == 700 and int((idx == 1).sum()) == 300
    _, d, _ = closest_points_on_mesh(sphere_mesh, q)
    # the distance of an isotropic Gaussian step to a (locally flat) surface: E|N(0,σ²)| = σ√(2/π)
    assert float(d[idx == 0].mean()) == pytest.approx(0.001 * np.sqrt(2 / np.pi), rel=0.15)
    assert float(d[idx == 1].mean()) == pytest.approx(0.05 * np.sqrt(2 / np.pi), rel=0.2)
    q2, _ = sample_queries(sphere_mesh, 1000, scales=(0.001, 0.05), ratios=(0.7, 0.3), seed=1)
    assert torch.equal(q, q2)


def test_prepare_shape_gives_exact_displacements():
    import trimesh

    box = Mesh.from_trimesh(trimesh.creation.box(extents=(2.0, 1.2, 0.8)), torch.float64)  # not unit
    data = prepare_shape(box, SMALL, seed=3)
    assert data["cloud"].dtype == torch.float32 and data["cloud"].shape == (1500, 3)
    assert float(data["cloud"].abs().amax(0)[0]) == pytest.approx(0.5, abs=1e-6)  # unit box
    q = data["queries"].double()
    exact = sdf_box(q, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)).abs()
    d = data["displacements"].double().norm(dim=1)
    assert torch.allclose(d, exact, atol=1e-6)
    on_surface = q + data["displacements"].double()
    assert float(sdf_box(on_surface, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)).abs().max()) < 1e-6


def test_dataset_cache_is_reproducible_resumable_and_rebuilt_on_change(tmp_path):
    sources = procedural_sources(1, families=["torus", "box"], resolution=32)
    paths = prepare_dataset(sources, tmp_path / "a", SMALL, seed=1, progress=False)
    assert [p.name for p in paths] == [f"{s.name}.safetensors" for s in sources]
    stamp = [p.stat().st_mtime_ns for p in paths]
    again = prepare_dataset(sources, tmp_path / "a", SMALL, seed=1, progress=False)
    assert [p.stat().st_mtime_ns for p in again] == stamp  # reused
    # same seed elsewhere: identical; and one shape does not depend on the others
    solo = prepare_dataset(sources[1:], tmp_path / "b", SMALL, seed=1, progress=False)
    x, y = load_prepared(paths[1]), load_prepared(solo[0])
    assert all(torch.equal(x[k], y[k]) for k in x)
    # another seed or configuration rebuilds
    prepare_dataset(sources, tmp_path / "a", SMALL, seed=2, progress=False)
    z = load_prepared(paths[1])
    assert not torch.equal(z["cloud"], x["cloud"])
    # a corrupt file is rebuilt, not trusted
    paths[0].write_bytes(b"garbage")
    prepare_dataset(sources, tmp_path / "a", SMALL, seed=2, progress=False)
    assert load_prepared(paths[0])["cloud"].shape == (1500, 3)
    assert shape_seed(1, "a") == shape_seed(1, "a") != shape_seed(1, "b")


def test_prepared_shapes_dataset(tmp_path):
    paths = prepare_dataset(procedural_sources(1, families=["capsule"], resolution=32), tmp_path,
                            SMALL, progress=False)
    ds = PreparedShapes(paths, n_queries=256, seed=0)
    a = ds[0]
    assert a["queries"].shape == (256, 3) and a["displacements"].shape == (256, 3)
    assert a["cloud"].shape == (1500, 3)
    assert torch.equal(ds[0]["queries"], a["queries"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["queries"], a["queries"])
    assert PreparedShapes(paths, n_queries=None)[0]["queries"].shape == (1200, 3)
    assert PreparedShapes(paths, n_queries=5000)[0]["queries"].shape == (5000, 3)


def test_data_bad_input(tmp_path, sphere_mesh):
    for bad in ({"n_points": 0}, {"n_queries": -1}, {"noise": -0.1}, {"noise": float("nan")},
                {"density": "dense"}, {"varying_ratio": 0.5}, {"query_scales": (0.1,)},
                {"query_ratios": (0.0, 0.0, 0.0)}, {"query_scales": (-1.0, 0.1, 0.1)}):
        with pytest.raises(InvalidInputError):
            PrepConfig(**bad)
    with pytest.raises(InvalidInputError):
        procedural_sources(0)
    with pytest.raises(InvalidInputError):
        procedural_sources(1, families=["teapot"])
    with pytest.raises(DataFileNotFoundError):
        mesh_file_sources([tmp_path / "missing.ply"])
    src = ShapeSource("x", lambda: sphere_mesh)
    with pytest.raises(InvalidInputError, match="unique"):
        prepare_dataset([src, src], tmp_path, SMALL, progress=False)
    with pytest.raises(InvalidInputError, match="plain file names"):
        prepare_dataset([ShapeSource("../x", lambda: sphere_mesh)], tmp_path, SMALL, progress=False)
    # a file that is not a mesh fails when it is read, with a typed error
    junk = tmp_path / "junk.ply"
    junk.write_text("not a mesh")
    with pytest.raises(CorruptFileError):
        prepare_dataset(mesh_file_sources([junk]), tmp_path / "out", SMALL, progress=False)
    flat = Mesh(torch.zeros(3, 3, dtype=torch.float64), torch.tensor([[0, 1, 2]]))
    with pytest.raises(DegenerateGeometryError):
        prepare_shape(flat, SMALL)
    with pytest.raises(DataFileNotFoundError):
        load_prepared(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CorruptFileError):
        load_prepared(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CorruptFileError, match="not an equivision"):
        load_prepared(tmp_path / "foreign.safetensors")
    with pytest.raises(InvalidInputError):
        PreparedShapes([])


@pytest.fixture(scope="module")
def sphere_mesh() -> Mesh:
    import trimesh

    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=3, radius=0.5), torch.float64)
