"""``equivision sample``: seeded clouds from meshes, float64 kept, bad options refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from equivision.cli import main
from equivision.io import load_point_cloud


@pytest.fixture
def box(tmp_path):
    p = tmp_path / "box.ply"
    trimesh.creation.box(extents=(1.0, 2.0, 3.0)).export(p)
    return p


def _run(argv, capfd):
    code = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return code, out, err


def test_same_seed_same_cloud_other_seed_other_cloud(box, tmp_path, capfd):
    for name, seed in (("a.ply", 0), ("b.ply", 0), ("c.ply", 1)):
        code, _, err = _run(["sample", box, "-o", tmp_path / name, "-n", 500, "--seed", seed], capfd)
        assert code == 0, err
    a, b, c = (load_point_cloud(tmp_path / n)[0] for n in ("a.ply", "b.ply", "c.ply"))
    assert a.shape == (500, 3) and torch.equal(a, b) and not torch.equal(a, c)
    # every point lies on the box's surface: one coordinate at its half extent
    half = torch.tensor([0.5, 1.0, 1.5])
    assert ((a.abs() - half).abs().min(1).values < 1e-5).all()


def test_rotate_keeps_distances_to_the_centre_and_normals_are_written(box, tmp_path, capfd):
    code, _, err = _run(["sample", box, "-o", tmp_path / "r.npy", "-n", 300, "--rotate", "--normals"], capfd)
    assert code == 0, err
    code, _, err = _run(["sample", box, "-o", tmp_path / "p.npy", "-n", 300, "--normals"], capfd)
    assert code == 0, err
    r, p = np.load(tmp_path / "r.npy"), np.load(tmp_path / "p.npy")
    assert r.shape == (300, 6)
    np.testing.assert_allclose(np.linalg.norm(r[:, :3], axis=1), np.linalg.norm(p[:, :3], axis=1), atol=1e-5)
    assert np.abs(r[:, :3] - p[:, :3]).max() > 0.1  # it did rotate
    np.testing.assert_allclose(np.linalg.norm(r[:, 3:], axis=1), 1.0, atol=1e-6)


def test_far_off_mesh_keeps_float64_detail(tmp_path, capfd):
    m = trimesh.creation.icosphere(2)
    v, f = np.asarray(m.vertices) + 1e6, np.asarray(m.faces)
    src = tmp_path / "far.ply"
    src.write_text("ply\nformat ascii 1.0\n"
                   f"element vertex {len(v)}\nproperty double x\nproperty double y\nproperty double z\n"
                   f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
                   + "".join(f"{a:.17g} {b:.17g} {c:.17g}\n" for a, b, c in v)
                   + "".join(f"3 {a} {b} {c}\n" for a, b, c in f))
    code, _, err = _run(["sample", src, "-o", tmp_path / "far.ply.xyz", "-n", 200], capfd)
    assert code == 0, err
    pts, _ = load_point_cloud(tmp_path / "far.ply.xyz", dtype=torch.float64)
    radius = (pts - 1e6).norm(dim=1)
    # on the flat faces inside the unit sphere; in float32 the spacing at 1e6 is 0.0625
    assert float(radius.max()) <= 1 + 1e-6 and float(radius.min()) > 0.95


@pytest.mark.parametrize(("extra", "says"), [
    (["-n", "0"], "--points"), (["--noise", "nan"], "--noise"), (["--noise", "-1"], "--noise"),
    (["--seed", "-3"], "--seed"),
])
def test_bad_options_one_line(box, tmp_path, capfd, extra, says):
    code, _, err = _run(["sample", box, "-o", tmp_path / "x.ply", *extra], capfd)
    assert code == 2 and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "x.ply").exists()


def test_noise_is_seeded_and_scaled(box, tmp_path, capfd):
    for name in ("n1.npy", "n2.npy"):
        code, _, err = _run(["sample", box, "-o", tmp_path / name, "-n", 2000, "--noise", "0.01"], capfd)
        assert code == 0, err
    code, _, _ = _run(["sample", box, "-o", tmp_path / "clean.npy", "-n", 2000], capfd)
    n1, n2, clean = (np.load(tmp_path / n) for n in ("n1.npy", "n2.npy", "clean.npy"))
    np.testing.assert_array_equal(n1, n2)
    std = (n1 - clean).std()
    diag = np.sqrt(1 + 4 + 9)
    assert 0.8 * 0.01 * diag < std < 1.2 * 0.01 * diag
