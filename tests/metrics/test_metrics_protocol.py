"""The evaluation protocol on shapes with known answers, and the ``evaluate`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from _devices import tol
from equivision.cli import main
from equivision.errors import DegenerateGeometryError, InvalidInputError
from equivision.io import Mesh, save_mesh, save_point_cloud
from equivision.metrics import ReconstructionMetrics, evaluate_reconstruction, mean_metrics


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    import trimesh

    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions=5, radius=0.5), torch.float64)


def test_concentric_spheres_give_the_radial_gap(sphere):
    """Reference: a sphere of diameter 1 (the unit box). Prediction: radius 0.5 + δ. Every NN
    distance is ≈ δ (plus the sampling spacing, ≈ 0.005 at 30k points, which adds < 1% here),
    so CD-L1 ≈ 100 δ, CD-L2 ≈ 10⁴ δ², F@τ is 0 below δ and 1 above."""
    delta = 0.05
    pred = Mesh(sphere.vertices * (1 + 2 * delta), sphere.faces)
    m = evaluate_reconstruction(pred, sphere, n_points=30_000, emd_points=512, thresholds=(0.06, 0.04))
    assert m.scale == pytest.approx(1.0, abs=1e-3)
    assert m.cd_l1_x100 == pytest.approx(100 * delta, rel=0.01)
    assert m.cd_l2_x1e4 == pytest.approx(1e4 * delta**2, rel=0.02)
    assert m.fscore == {0.06: 1.0, 0.04: 0.0}
    assert m.normal_consistency == pytest.approx(1.0, abs=2e-3)
    assert m.emd_x100 >= 100 * delta * 0.99  # matching can never beat the radial gap


def test_same_mesh_scores_perfectly_and_protocol_is_scale_free(sphere):
    # identical meshes differ only by the sampling: at 100k samples the NN spacing on a sphere
    # of area π is ≈ 0.003, so nearly every sample is within 1% of the other set
    m = evaluate_reconstruction(sphere, sphere, emd_points=256, seed=1)
    assert m.fscore[0.01] > 0.99
    assert m.cd_l1_x100 < 0.35
    assert m.normal_consistency > 0.999
    # the reference is normalised to the unit box and the prediction follows it: scaling and
    # moving both meshes together changes nothing (same seed, same samples in unit coordinates)
    moved = Mesh(sphere.vertices * 1000 + torch.tensor([5.0, -3.0, 2.0]), sphere.faces)
    pred = Mesh(sphere.vertices * 1.02, sphere.faces)
    pred_moved = Mesh(pred.vertices * 1000 + torch.tensor([5.0, -3.0, 2.0]), sphere.faces)
    a = evaluate_reconstruction(pred, sphere, n_points=5000, emd_points=128)
    b = evaluate_reconstruction(pred_moved, moved, n_points=5000, emd_points=128)
    assert b.scale == pytest.approx(1000 * a.scale)
    for k in ("cd_l1_x100", "cd_l2_x1e4", "emd_x100", "normal_consistency"):
        assert getattr(b, k) == pytest.approx(getattr(a, k), rel=1e-9), k
    assert a.fscore == b.fscore


def test_seeded_and_point_cloud_predictions(sphere):
    pred = Mesh(sphere.vertices * 1.01, sphere.faces)
    a = evaluate_reconstruction(pred, sphere, n_points=4000, emd_points=128, seed=3)
    b = evaluate_reconstruction(pred, sphere, n_points=4000, emd_points=128, seed=3)
    c = evaluate_reconstruction(pred, sphere, n_points=4000, emd_points=128, seed=4)
    assert a == b and a != c
    cloud = pred.vertices[:3000]
    m = evaluate_reconstruction(cloud, sphere, n_points=4000, emd_points=128)
    assert m.normal_consistency is None and m.emd_points == 128
    m2 = evaluate_reconstruction((cloud, cloud), sphere, n_points=2000, emd_points=128)
    assert m2.normal_consistency == pytest.approx(1.0, abs=1e-2)  # radial normals on a sphere
    small = evaluate_reconstruction(cloud[:50], sphere, n_points=4000, emd_points=128)
    assert small.emd_points == 50  # EMD uses as many points as the smaller side has


FIGURES = ("cd_l1_x100", "cd_l2_x1e4", "emd_x100", "emd_x100_std", "normal_consistency", "scale")


def test_any_dtype_and_device_gives_the_float64_figures(sphere, device, dtype):
    """The protocol works in float64 on the CPU: meshes and clouds of either dtype on any
    device give the figures of their float64 CPU copies (the analytic checks above run in
    float64 only, they are the heavy ones). float64 input: identical figures; float32: only
    the rounding of the coordinates, measured at most 3.5e-8 relative (EMD's spread over two
    draws; 2.2e-8 on the others), asserted 1e-6; F-scores unchanged."""
    pred = Mesh(sphere.vertices * 1.02 + torch.tensor([0.01, 0, 0], dtype=torch.float64), sphere.faces)
    cloud = pred.vertices[:2500]
    moved = cloud.to(device, dtype)
    kw = {"n_points": 3000, "emd_points": 128, "emd_draws": 2, "seed": 2}

    def cast(m: Mesh) -> Mesh:
        return Mesh(m.vertices.to(device, dtype), m.faces.to(device))

    pairs = [(evaluate_reconstruction(pred, sphere, **kw),
              evaluate_reconstruction(cast(pred), cast(sphere), **kw)),
             (evaluate_reconstruction((cloud, cloud), sphere, **kw),
              evaluate_reconstruction((moved, moved), cast(sphere), **kw))]
    bound = tol(dtype, f32=1e-6, f64=0.0)  # relative, no absolute slack: 0 means equal
    for ref, got in pairs:
        for k in FIGURES:
            assert getattr(got, k) == pytest.approx(getattr(ref, k), rel=bound, abs=0.0), k
        assert got.fscore == ref.fscore and got.emd_points == ref.emd_points
        assert dtype != torch.float64 or got == ref


def test_mean_metrics_over_shapes_and_classes():
    def r(cd: float, f: float) -> ReconstructionMetrics:
        return ReconstructionMetrics(cd, cd, cd, None, {0.01: f}, {0.01: f}, {0.01: f}, 10, 10, 1.0)

    res = [r(1.0, 1.0), r(3.0, 0.5), r(8.0, 0.0)]
    assert mean_metrics(res)["cd_l1_x100"] == pytest.approx(4.0)
    by_class = mean_metrics(res, classes=["a", "a", "b"])
    assert by_class["cd_l1_x100"] == pytest.approx((2.0 + 8.0) / 2)
    assert by_class["fscore@0.01"] == pytest.approx((0.75 + 0.0) / 2)
    assert "normal_consistency" not in by_class
    with pytest.raises(InvalidInputError):
        mean_metrics([])
    with pytest.raises(InvalidInputError):
        mean_metrics(res, classes=["a"])


def test_protocol_bad_input(sphere):
    with pytest.raises(InvalidInputError):
        evaluate_reconstruction(sphere, sphere, n_points=0)
    with pytest.raises(InvalidInputError):
        evaluate_reconstruction(sphere, sphere, emd_points=0)
    with pytest.raises(InvalidInputError):
        evaluate_reconstruction(sphere, sphere, thresholds=(-0.01,))
    with pytest.raises(InvalidInputError):
        evaluate_reconstruction("mesh.ply", sphere)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        evaluate_reconstruction(torch.full((10, 3), float("nan")), sphere)
    flat = Mesh(torch.zeros(3, 3, dtype=torch.float64), torch.tensor([[0, 1, 2]]))
    with pytest.raises(DegenerateGeometryError):
        evaluate_reconstruction(sphere, flat)  # reference collapsed to a point
    line = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), torch.tensor([[0, 1, 2]]))
    with pytest.raises(DegenerateGeometryError):
        evaluate_reconstruction(line, sphere)  # prediction with zero area


def test_evaluate_command_table_json_and_errors(sphere, tmp_path, capsys):
    ref = save_mesh(Mesh(sphere.vertices.float(), sphere.faces), tmp_path / "ref.ply")
    pred = save_mesh(Mesh(sphere.vertices.float() * 1.01, sphere.faces), tmp_path / "pred.obj")
    assert main(["evaluate", str(pred), str(ref), "--points", "3000", "--emd-points", "64"]) == 0
    out = capsys.readouterr().out
    assert "CD-L1" in out and "F-score @1%" in out and "F-score @0.5%" in out
    args = ["evaluate", str(pred), str(ref), "--json", "--points", "3000", "--emd-points", "64",
            "--threshold", "0.02", "--seed", "7"]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)
    api = evaluate_reconstruction(Mesh(sphere.vertices.float() * 1.01, sphere.faces),
                                  Mesh(sphere.vertices.float(), sphere.faces), n_points=3000,
                                  emd_points=64, thresholds=(0.02,), seed=7)
    assert d["cd_l1_x100"] == pytest.approx(api.cd_l1_x100, rel=1e-5)
    assert list(d["fscore"]) == ["0.02"]
    # a point cloud (PLY without faces, and NPY) as the prediction
    cloud = save_point_cloud(sphere.vertices.float()[:2000], tmp_path / "cloud.ply")
    assert main(["evaluate", str(cloud), str(ref), "--json", "--points", "3000",
                 "--emd-points", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["normal_consistency"] is None
    npy = tmp_path / "cloud.npy"
    np.save(npy, sphere.vertices.numpy()[:2000])
    assert main(["evaluate", str(npy), str(ref), "--points", "3000", "--emd-points", "64"]) == 0
    capsys.readouterr()
    # errors: one line, exit 2
    junk = tmp_path / "junk.ply"
    junk.write_text("this is not a mesh\n")
    for bad in (["evaluate", str(junk), str(ref)], ["evaluate", str(pred), str(tmp_path / "missing.ply")],
                ["evaluate", str(pred), str(cloud)], ["evaluate", str(pred), str(ref), "--threshold", "0"]):
        assert main(bad) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error:") and "Traceback" not in err


def test_emd_is_the_mean_over_independent_draws(sphere):
    """Reproduced by hand: the reference's samples, then per draw one random subset of each
    side (a cloud prediction is used as is), each matched exactly by SciPy's assignment (the
    EMD kernel itself is checked against POT and brute force in its own tests)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    from equivision.geometry import sample_surface_uniform

    g0 = torch.Generator().manual_seed(5)
    cloud = sphere.vertices[torch.randperm(len(sphere.vertices), generator=g0)[:300]] * 1.02
    m = evaluate_reconstruction(cloud, sphere, n_points=2000, emd_points=100, emd_draws=3, seed=9)
    gen = torch.Generator().manual_seed(9)
    ref_pts, _ = sample_surface_uniform(sphere, 2000, generator=gen)
    values = []
    for _ in range(3):
        ia = torch.randperm(len(cloud), generator=gen)[:100]
        ib = torch.randperm(len(ref_pts), generator=gen)[:100]
        cost = cdist(cloud[ia].double().numpy(), ref_pts[ib].double().numpy())
        r, c = linear_sum_assignment(cost)
        values.append(cost[r, c].mean())
    assert m.emd_draws == 3
    assert m.emd_x100 == pytest.approx(100 * np.mean(values), rel=1e-9)
    assert m.emd_x100_std == pytest.approx(100 * np.std(values, ddof=1), rel=1e-9)
    one = evaluate_reconstruction(cloud, sphere, n_points=2000, emd_points=100, emd_draws=1, seed=9)
    assert one.emd_x100 == pytest.approx(100 * values[0], rel=1e-9) and one.emd_x100_std == 0.0
    with pytest.raises(InvalidInputError, match="emd_draws"):
        evaluate_reconstruction(sphere, sphere, emd_draws=0)
