"""ModelNet10 in the shapes-sphere task and experiment: official split, per-collection up axis,
cache key and build record, azimuth augmentation, teacher checks, and a smoke experiment on a
tiny fake data folder (so it runs without the shared data, in seconds)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from equivision.data.registry import MODELNET10_CLASSES, SHAPENET10_CLASSES, up_rotation
from equivision.data.shapes_sphere import (
    SphereDataConfig,
    cache_info,
    make_sphere_split,
    shared_class_signals,
    upright_rotations,
)
from equivision.errors import CheckpointError, ConfigError, InvalidInputError
from equivision.io import Mesh, save_mesh
from equivision.tasks.shapes_sphere import ShapesSphereConfig, load_teacher, roll_azimuth

B = 4  # bandwidth of the fake data: 8 × 8 signals


def _box(seed: int) -> Mesh:
    """A seeded box, taller along +z than wide: not symmetric under a quarter turn about x."""
    g = torch.Generator().manual_seed(seed)
    half = torch.tensor([0.3, 0.5, 1.0], dtype=torch.float64) * (1 + 0.2 * torch.rand(3, generator=g,
                                                                                       dtype=torch.float64))
    corners = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)],
                           dtype=torch.float64) * half
    faces = torch.tensor([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                          [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return Mesh(corners, faces)


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """modelnet10 (2 train, 1 test mesh per class) and shapenet10 (2 per class)."""
    root = tmp_path / "data"
    n = 0
    for split, count in (("train", 2), ("test", 1)):
        for cls in MODELNET10_CLASSES:
            d = root / "modelnet10" / split / cls
            d.mkdir(parents=True)
            for i in range(count):
                save_mesh(_box(n), d / f"{cls}_{i:04d}.ply")
                n += 1
    for cls in SHAPENET10_CLASSES:
        d = root / "shapenet10" / cls
        d.mkdir(parents=True)
        for i in range(2):
            save_mesh(_box(n), d / f"{i}.ply")
            n += 1
    monkeypatch.setenv("EQUIVISION_DATA", str(root))
    return root


def test_upright_rotations_follow_the_collections_up_axis():
    pole = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    r = upright_rotations(6, seed=1, up="+z")
    assert torch.allclose(r @ pole, pole.expand(6, 3))  # z-up objects stay on the pole
    assert not torch.allclose(r[0], r[1])
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(upright_rotations(6, seed=1) @ y, pole.expand(6, 3))  # ShapeNet's +y
    assert torch.allclose(up_rotation("+y", "+z") @ y, pole)


def test_modelnet10_uses_the_official_split_and_records_the_build(fake_root, tmp_path):
    cfg = SphereDataConfig(collection="modelnet10", bandwidth=B, train_rotations=2, test_rotations=3)
    split = make_sphere_split(cfg, tmp_path / "cache", show_progress=False)
    assert split.train_x.shape == (20 * 2, 2, 2 * B, 2 * B)
    assert split.test_x.shape == (10 * 3, 2, 2 * B, 2 * B)
    assert split.train_y.bincount().tolist() == [4] * 10 and split.classes == list(MODELNET10_CLASSES)
    (path,) = (tmp_path / "cache").iterdir()
    assert path.name.startswith("modelnet10-so3-so3-b4-")
    info = cache_info(path)
    assert info["build_seconds"] >= 0 and 0 < info["mib"] < 1
    # replacing a source mesh changes the key: a new file, built afresh
    save_mesh(_box(999), fake_root / "modelnet10" / "test" / "bed" / "bed_0000.ply", overwrite=True)
    make_sphere_split(cfg, tmp_path / "cache", show_progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_modelnet10_upright_poses_keep_z_on_the_pole(fake_root, tmp_path):
    """Upright ModelNet10 signals differ by azimuthal shifts only: their per-row (colatitude)
    means agree, as they would not if +y (ShapeNet's up) had been put on the pole."""
    cfg = SphereDataConfig(collection="modelnet10", protocol="upright-upright", bandwidth=8,
                           train_rotations=3, test_rotations=1)
    x = make_sphere_split(cfg, tmp_path, show_progress=False).train_x[:3, 0]  # one mesh, 3 poses
    rows = x.mean(-1)
    assert torch.allclose(rows[0], rows[1], atol=0.05) and torch.allclose(rows[0], rows[2], atol=0.05)
    # the box is tallest along z: its pole rays (first row) hit the near end, the equator's the sides
    assert float(rows[0, 0]) < float(rows[0, 8])


def test_roll_azimuth_is_a_turn_about_the_pole(fake_root):
    from equivision.render.sphere import raycast_sphere

    mesh = _box(3)
    a = 2 * math.pi / (2 * 8)  # one grid step at bandwidth 8
    rz = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
                      dtype=torch.float64)
    x = raycast_sphere(mesh, 8)
    turned = raycast_sphere(mesh, 8, rotations=rz[None])[0]
    assert torch.allclose(torch.roll(x, 1, -1), turned, atol=1e-4)
    batch = x.expand(6, -1, -1, -1)
    out = roll_azimuth(batch, torch.Generator().manual_seed(0))
    for o in out:  # each one a roll of the input, not all by the same shift
        assert any(torch.equal(o, torch.roll(x, k, -1)) for k in range(16))
    assert len({tuple(o[0, 8].tolist()) for o in out}) > 1


def test_shapenet_objects_of_shared_classes_in_modelnet_labels(fake_root):
    x, y, shared = shared_class_signals("shapenet10", "modelnet10", kind="upright", bandwidth=B,
                                        rotations=2)
    assert shared == ["bathtub", "chair", "toilet"]
    assert x.shape == (3 * 2 * 2, 2, 2 * B, 2 * B)
    assert sorted(set(y.tolist())) == [MODELNET10_CLASSES.index(c) for c in shared]
    with pytest.raises(InvalidInputError):
        shared_class_signals("shapenet10", "modelnet10", kind="z", bandwidth=B, rotations=1)


def test_unknown_collection_and_teacher_bandwidth_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="collection"):
        ShapesSphereConfig(collection="modelnet40")
    with pytest.raises(InvalidInputError):
        SphereDataConfig(collection="modelnet40")
    with pytest.raises(CheckpointError, match="bandwidth 32"):
        load_teacher("shapes_sphere_shapenet10", SphereDataConfig(collection="modelnet10", bandwidth=16))
    net = load_teacher("shapes_sphere_shapenet10", SphereDataConfig(collection="modelnet10"))
    assert not net.training


def test_modelnet10_experiment_smoke(fake_root, tmp_path, capsys):
    from equivision.experiments.shapes_sphere import cli, modelnet10_jobs, run_modelnet10_experiment

    assert len(modelnet10_jobs()) == 12  # 3 seeds × 2 models × (upright, SO3) trainings
    out = tmp_path / "exp"
    tiny = {"steps": 2, "batch_size": 4, "warmup_steps": 0, "eval_every": 2, "checkpoint_every": 2,
            "log_every": 1}
    data = {"bandwidth": B, "train_rotations": 1, "test_rotations": 1,
            "cache_dir": str(tmp_path / "cache")}
    models = {"spherical": {"stem_channels": 4, "channels": [4], "bandwidths": [B, 2]},
              "baseline": {"channels": [4]}}
    rows = run_modelnet10_experiment(str(out), seeds=(0,), train_cfg=tiny, data=data, model_cfgs=models)
    assert len(rows) == 4
    for r in rows:
        protocols = ("upright-upright", "upright-so3") if r["training"] == "upright" else ("so3-so3",)
        for p in protocols:
            assert 0 <= r[p] <= 100 and 0 <= r[f"shapenet10:{p}"] <= 100
    assert cli([str(out), "--collection", "modelnet10", "--summary"]) == 0
    table = capsys.readouterr().out
    assert "| spherical |" in table and "| baseline |" in table and "ShapeNet SO3 → SO3" in table
    assert cli([str(out), "--collection", "modelnet40", "--summary"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "modelnet40" in err[0]
    assert json.loads((out / "results_0.json").read_text())[0]["collection"] == "modelnet10"


def test_the_default_classifier_is_the_modelnet10_teacher(tmp_path, capsys):
    from equivision.cli import main
    from equivision.data.procedural import make_shape
    from equivision.pipelines.classify import DEFAULT_CLASSIFIER, load_classifier

    assert DEFAULT_CLASSIFIER == "shapes_sphere_modelnet10_hull6"
    net, classes = load_classifier()
    assert classes == MODELNET10_CLASSES and net.cfg.bandwidths[0] == 32
    path = save_mesh(make_shape("box", 0).mesh(24), tmp_path / "box.ply")
    assert main(["classify", str(path), "--json"]) == 0  # the command line's default too
    probs = json.loads(capsys.readouterr().out)
    assert list(probs) == list(MODELNET10_CLASSES) and abs(sum(probs.values()) - 1) < 1e-4
    assert main(["classify", str(path), "--json", "--model", "shapes_sphere_shapenet10"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == list(SHAPENET10_CLASSES)


def test_label_smoothing_smooths_the_training_loss_only():
    import numpy as np

    from equivision.tasks.shapes_sphere import ShapesSphereTask

    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match="label_smoothing"):
            ShapesSphereConfig(collection="modelnet10", label_smoothing=bad)
    task = ShapesSphereTask()
    task.label_smoothing = eps = 0.2
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    y = torch.tensor([0, 1])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits

    net = Fixed()
    # independent reference: the target puts 1 - eps on the label and eps / K on every class
    z = logits.numpy().astype(np.float64)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    target = np.full_like(z, eps / 3)
    target[np.arange(2), y.numpy()] += 1 - eps
    smoothed = float(-(target * logp).sum(1).mean())
    plain = float(-logp[np.arange(2), y.numpy()].mean())
    net.train()
    loss, _ = task.loss(net, (torch.zeros(2, 1), y))
    assert loss.item() == pytest.approx(smoothed, rel=1e-6)
    net.eval()
    loss, _ = task.loss(net, (torch.zeros(2, 1), y))
    assert loss.item() == pytest.approx(plain, rel=1e-6)
    assert smoothed != pytest.approx(plain, rel=1e-3)
