"""Normalisation, seeded surface sampling, FPS, noise, procedural shapes and drawn digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from equivision.data.digits import draw_digits, mnist_or_drawn
from equivision.data.procedural import EXACT_SDF, FAMILIES, make_shape, make_shapes
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.geometry import (
    add_gaussian_noise,
    denormalize_points,
    farthest_point_sampling,
    normalize_mesh,
    normalize_points,
    sample_surface_poisson_disk,
    sample_surface_uniform,
)
from equivision.io import Mesh


def _cube() -> Mesh:
    tm = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
    return Mesh(torch.tensor(tm.vertices, dtype=torch.float64), torch.tensor(tm.faces))


def test_normalize_to_unit_box_and_back():
    pts = torch.randn(200, 3, dtype=torch.float64) * torch.tensor([5.0, 1.0, 0.1]) + 7
    n, c, s = normalize_points(pts)
    ext = n.amax(0) - n.amin(0)
    assert abs(float(ext.max()) - 1) < 1e-12
    assert torch.allclose((n.amax(0) + n.amin(0)) / 2, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(denormalize_points(n, c, s), pts)
    m, _, _ = normalize_mesh(_cube())
    assert torch.allclose(m.vertices.abs().amax(), torch.tensor(0.5, dtype=torch.float64))
    with pytest.raises(DegenerateGeometryError):
        normalize_points(torch.ones(5, 3))
    with pytest.raises(InvalidInputError):
        normalize_points(torch.tensor([[0.0, 0.0, float("nan")], [1.0, 1.0, 1.0]]))


def test_uniform_sampling_is_seeded_on_surface_with_correct_normals():
    cube = _cube()
    p1, n1 = sample_surface_uniform(cube, 6000, seed=3)
    p2, n2 = sample_surface_uniform(cube, 6000, seed=3)
    assert torch.equal(p1, p2) and torch.equal(n1, n2)
    assert not torch.equal(p1, sample_surface_uniform(cube, 6000, seed=4)[0])
    # every point is on a face of the cube and its normal is that face's outward normal
    assert torch.allclose(p1.abs().amax(1), torch.ones(6000, dtype=torch.float64), atol=1e-12)
    face_axis = p1.abs().argmax(1)
    expected = torch.zeros_like(p1)
    expected[torch.arange(6000), face_axis] = torch.sign(p1[torch.arange(6000), face_axis])
    assert torch.allclose(n1, expected, atol=1e-12)
    # uniform by area: each of the 6 faces gets ~1/6 of the points
    counts = torch.bincount(face_axis * 2 + (p1[torch.arange(6000), face_axis] > 0), minlength=6)
    assert float((counts.double() / 6000 - 1 / 6).abs().max()) < 0.02


def test_poisson_disk_spreads_points_more_evenly_than_uniform():
    cube = _cube()
    pu, _ = sample_surface_uniform(cube, 500, seed=0)
    pp, npp = sample_surface_poisson_disk(cube, 500, seed=0)
    nearest = lambda p: (torch.cdist(p, p) + torch.eye(len(p)) * 1e9).amin(1)  # noqa: E731
    assert float(nearest(pp).min()) > 3 * float(nearest(pu).min())
    assert pp.shape == (500, 3) and npp.shape == (500, 3)


def test_farthest_point_sampling_against_brute_force():
    pts = torch.rand(60, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    idx = farthest_point_sampling(pts, 10, seed=1)
    # slow reference: recompute greedily from the same start
    chosen = [int(idx[0])]
    for _ in range(9):
        d = torch.cdist(pts, pts[chosen]).amin(1)
        chosen.append(int(d.argmax()))
    assert idx.tolist() == chosen
    with pytest.raises(InvalidInputError):
        farthest_point_sampling(pts, 61)


def test_noise_is_seeded_with_the_asked_sigma():
    pts = torch.zeros(20000, 3, dtype=torch.float64)
    a = add_gaussian_noise(pts, 0.01, seed=5)
    assert torch.equal(a, add_gaussian_noise(pts, 0.01, seed=5))
    assert abs(float(a.std()) - 0.01) < 3e-4
    with pytest.raises(InvalidInputError):
        add_gaussian_noise(pts, -1.0)


def test_sampling_bad_input():
    flat = Mesh(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]))
    with pytest.raises(DegenerateGeometryError):
        sample_surface_uniform(flat, 10)
    with pytest.raises(InvalidInputError):
        sample_surface_uniform(_cube(), 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_procedural_families(family):
    s = make_shape(family, seed=2)
    assert s.label == FAMILIES.index(family)
    m = s.mesh(48)
    tm = m.to_trimesh()
    assert tm.is_watertight and tm.volume > 0  # closed and outward-facing
    ext = m.vertices.amax(0) - m.vertices.amin(0)
    assert abs(float(ext.max()) - 1) < 0.05
    # the SDF vanishes on the mesh, is negative at the centre of mass of the solid's samples,
    # positive far away
    assert float(s.sdf(m.vertices).abs().max()) < 0.03
    assert float(s.sdf(torch.tensor([[3.0, 3.0, 3.0]]))) > 0
    torch.testing.assert_close(make_shape(family, 2).sdf(m.vertices), s.sdf(m.vertices))


@pytest.mark.parametrize("family", sorted(EXACT_SDF))
def test_exact_sdfs_match_mesh_distance(family):
    s = make_shape(family, seed=1)
    m = s.mesh(96).to_trimesh()
    q = (torch.rand(300, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5) * 1.4
    _, dist, _ = trimesh.proximity.closest_point(m, q.numpy())
    sdf = s.sdf(q).numpy()
    # |sdf| equals the distance to the surface up to the marching-cubes discretisation
    # (grid step ~0.015 at resolution 96; sharp tips and edges are cut by up to about one step)
    np.testing.assert_allclose(np.abs(sdf), dist, atol=0.02)
    assert np.median(np.abs(np.abs(sdf) - dist)) < 1e-3


def test_make_shapes_is_deterministic():
    a = make_shapes(2, seed=0, families=("box", "torus"))
    b = make_shapes(2, seed=0, families=("box", "torus"))
    assert [s.params for s in a] == [s.params for s in b]
    assert [s.family for s in a] == ["box", "box", "torus", "torus"]
    with pytest.raises(InvalidInputError):
        make_shape("teapot")


def test_drawn_digits_are_seeded_balanced_and_mnist_like():
    im, lb = draw_digits(200, seed=1)
    im2, lb2 = draw_digits(200, seed=1)
    assert torch.equal(im, im2) and torch.equal(lb, lb2)
    assert im.shape == (200, 28, 28) and im.dtype == torch.float32
    assert float(im.min()) >= 0 and float(im.max()) <= 1
    assert torch.bincount(lb, minlength=10).tolist() == [20] * 10
    # digits are centred with dark borders, like MNIST
    assert float(im[:, :2].mean()) < 0.05 and float(im[:, 10:18, 10:18].mean()) > 0.2


def test_mnist_or_drawn_falls_back_without_data(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIVISION_DATA", str(tmp_path))
    im, _lb, source = mnist_or_drawn(n=30)
    assert source == "drawn" and im.shape == (30, 28, 28)
