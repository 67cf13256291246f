"""ModelNet10 in the shapes-sphere task and experiment: official split, per-collection up axis,
cache key and build record, azimuth augmentation, teacher checks, and a smoke experiment on a
tiny fake data folder (so it runs without the shared data, in seconds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

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


def test_modelnet10_experiment_takes_a_training_configs_recipe(fake_root, tmp_path, capsys):
    from equivision.experiments.shapes_sphere import (
        MODELNET10_FINAL_RECIPE,
        cli,
        recipe_from_config,
        run_modelnet10_experiment,
    )

    final = recipe_from_config(Path(__file__).parents[2] / MODELNET10_FINAL_RECIPE)  # the packaged teacher's
    assert final["data"]["mixup_alpha"] == 0.2 and final["data"]["train_scalings"] == 4
    assert final["train"]["steps"] == final["train"]["eval_every"] == 4000
    assert "seed" not in final["train"] and "protocol" not in final["data"]
    assert "collection" not in final["data"] and "num_classes" not in final["model"]
    for text in ("{not json", json.dumps({"task_name": "image-to-sphere", "train": {}, "task": {}})):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ConfigError, match=r"bad\.json"):
            recipe_from_config(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="cannot read"):
        recipe_from_config(tmp_path / "missing.json")

    recipe = {"task_name": "shapes-sphere",
              "train": {"steps": 2, "batch_size": 4, "warmup_steps": 0, "eval_every": 1,
                        "checkpoint_every": 2, "log_every": 1, "seed": 7},
              "task": {"collection": "modelnet10", "protocol": "so3-so3", "bandwidth": B,
                       "train_rotations": 1, "test_rotations": 1, "mixup_alpha": 0.4,
                       "cache_dir": str(tmp_path / "cache"), "channels": ["distance", "cosine"],
                       "model": {"num_classes": 10, "dropout": 0.2, "in_channels": 2,
                                 "stem_channels": 4, "channels": [4], "bandwidths": [B, 2]}}}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    out = tmp_path / "exp"
    rows = run_modelnet10_experiment(str(out), seeds=(0,), recipe=path,
                                     model_cfgs={"baseline": {"channels": [4]}})
    assert len(rows) == 4
    for r in rows:
        run_cfg = json.loads((out / r["name"] / "config.json").read_text())
        assert run_cfg["train"]["seed"] == 0 and run_cfg["train"]["eval_every"] == 2
        assert run_cfg["task"]["mixup_alpha"] == 0.4 and run_cfg["task"]["model"]["dropout"] == 0.2
        assert run_cfg["task"]["protocol"] == ("so3-so3" if r["training"] == "so3" else "upright-upright")
        if r["model"] == "baseline":  # the spherical CNN's own fields stay its own
            assert "bandwidths" not in run_cfg["task"]["model"]
    capsys.readouterr()
    assert cli([str(out), "--collection", "modelnet10", "--summary"]) == 0
    assert f"seeds 0; recipe: {path} (2 steps, mixup 0.4" in capsys.readouterr().out
    recipe["task"]["mixup_alpha"] = 0.0
    path.write_text(json.dumps(recipe))
    with pytest.raises(ConfigError, match="another recipe"):
        run_modelnet10_experiment(str(out), seeds=(0,), recipe=path,
                                  model_cfgs={"baseline": {"channels": [4]}})
    assert cli([str(out), "--recipe", str(path), "--summary"]) == 2  # not the modelnet10 experiment
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--recipe" in err[0]


def test_the_default_classifier_is_the_modelnet10_teacher(tmp_path, capsys):
    from equivision.cli import main
    from equivision.data.procedural import make_shape
    from equivision.pipelines.classify import DEFAULT_CLASSIFIER, load_classifier

    assert DEFAULT_CLASSIFIER == "shapes_sphere_modelnet10_mixup"
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


def test_distillation_loss_and_targets_match_a_numpy_reference():
    import numpy as np

    from equivision.tasks.shapes_sphere import distillation_loss, distillation_targets

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64)
    teacher_logits = [torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    t = 3.0

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    target = sum(softmax(z.numpy() / t) for z in teacher_logits) / 2
    student = softmax(logits.numpy() / t)
    kl = float((target * (np.log(target) - np.log(student))).sum(1).mean()) * t * t
    assert distillation_loss(logits, torch.as_tensor(target), t).item() == pytest.approx(kl, rel=1e-6)

    class Fixed(torch.nn.Module):
        def __init__(self, z):
            super().__init__()
            self.z = z
            self.w = torch.nn.Parameter(torch.zeros(1))  # a device to read

        def forward(self, x):
            return self.z[x[:, 0].long()]

    x = torch.arange(5, dtype=torch.float32)[:, None]
    soft = distillation_targets([Fixed(z.float()) for z in teacher_logits], x, t, batch_size=2)
    assert soft.shape == (5, 4) and torch.allclose(soft.sum(1), torch.ones(5))
    assert np.allclose(soft.numpy(), target, atol=1e-6)
    # float64 gradient of the loss against finite differences
    assert torch.autograd.gradcheck(
        lambda z: distillation_loss(z, torch.as_tensor(target), t), (logits.clone().requires_grad_(),))


def test_distillation_settings_are_checked():
    for kw in ({"distill_weight": 0.5}, {"distill_from": ["runs/x"]},
               {"distill_from": ["runs/x"], "distill_weight": 1.5},
               {"distill_from": ["runs/x"], "distill_weight": -0.1},
               {"distill_from": ["runs/x"], "distill_weight": 0.5, "distill_temperature": 0.0},
               {"distill_from": [""], "distill_weight": 0.5}):
        with pytest.raises(ConfigError, match="distill"):
            ShapesSphereConfig(collection="modelnet10", **kw)
    ShapesSphereConfig(collection="modelnet10", distill_from=["runs/x"], distill_weight=0.9)


def test_a_teacher_of_other_classes_or_channels_cannot_teach(tmp_path):
    from equivision.tasks.shapes_sphere import load_distillation_teachers

    six = ["distance", "cosine", "sine", "hull_distance", "hull_cosine", "hull_sine"]
    cfg = ShapesSphereConfig(collection="modelnet10", distill_from=["shapes_sphere_shapenet10"],
                             distill_weight=0.5)  # ten classes too, but ShapeNet's
    with pytest.raises(CheckpointError, match="other classes"):
        load_distillation_teachers(cfg, 10)
    cfg = ShapesSphereConfig(collection="modelnet10", distill_from=["shapes_sphere_modelnet10"],
                             distill_weight=0.5, channels=six, model={"in_channels": 6})
    with pytest.raises(CheckpointError, match="input channels"):
        load_distillation_teachers(cfg, 10)
    cfg = ShapesSphereConfig(collection="modelnet10", distill_from=["shapes_sphere_modelnet10_hull6"],
                             distill_weight=0.5, channels=six[::-1], model={"in_channels": 6})
    with pytest.raises(CheckpointError, match="channels"):
        load_distillation_teachers(cfg, 10)
    cfg = ShapesSphereConfig(collection="modelnet10", distill_from=["shapes_sphere_modelnet10_hull6"],
                             distill_weight=0.5, channels=six, model={"in_channels": 6})
    (net,) = load_distillation_teachers(cfg, 10)
    assert not net.training


def test_distilled_training_mixes_the_two_losses(fake_root, tmp_path):
    import numpy as np

    from equivision.tasks.shapes_sphere import ShapesSphereTask, distillation_targets
    from equivision.training import get_task, train

    tiny = {"steps": 2, "batch_size": 4, "warmup_steps": 0, "eval_every": 2, "checkpoint_every": 2,
            "log_every": 1}
    data = {"collection": "modelnet10", "bandwidth": B, "train_rotations": 1, "test_rotations": 1,
            "cache_dir": str(tmp_path / "cache"),
            "model": {"num_classes": 10, "stem_channels": 4, "channels": [4], "bandwidths": [B, 2]}}
    task = get_task("shapes-sphere")
    train(task, {"train": tiny, "task": data}, tmp_path / "teacher", progress=False)
    student_cfg = {**data, "distill_from": [str(tmp_path / "teacher")], "distill_weight": 0.75,
                   "distill_temperature": 2.0}
    student = ShapesSphereTask()
    train_set, test_set = student.datasets(ShapesSphereConfig(**student_cfg))
    x, y, soft = train_set.tensors
    assert len(test_set.tensors) == 2 and torch.allclose(soft.sum(1), torch.ones(len(y)))
    from equivision.tasks.shapes_sphere import load_teacher

    teacher = load_teacher(str(tmp_path / "teacher"), ShapesSphereConfig(**data).data_config(),
                           checkpoint="latest")
    assert torch.allclose(soft, distillation_targets([teacher], x, 2.0), atol=1e-6)

    logits = torch.tensor([[2.0, -1.0] + [0.0] * 8, [0.1, 0.2, 3.0] + [0.0] * 7])

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits

    net, yb, sb = Fixed(), y[:2], soft[:2]
    z = logits.numpy().astype(np.float64)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    ce = float(-logp[np.arange(2), yb.numpy()].mean())
    logq = z / 2 - np.log(np.exp(z / 2).sum(1, keepdims=True))
    s = sb.numpy().astype(np.float64)
    kd = float((s * (np.log(s) - logq)).sum(1).mean()) * 4
    net.train()
    loss, _ = student.loss(net, (x[:2], yb, sb))
    assert loss.item() == pytest.approx(0.25 * ce + 0.75 * kd, rel=1e-5)
    net.eval()  # evaluation: plain cross-entropy
    loss, _ = student.loss(net, (x[:2], yb))
    assert loss.item() == pytest.approx(ce, rel=1e-6)
    # and the trainer runs it end to end
    res = train(task, {"train": tiny, "task": student_cfg}, tmp_path / "student", progress=False)
    assert 0 <= res.eval_metrics["accuracy"] <= 100


def test_mixup_mixes_training_batches_and_their_labels_only():
    import numpy as np

    from equivision.tasks.shapes_sphere import ShapesSphereTask

    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="mixup_alpha"):
            ShapesSphereConfig(collection="modelnet10", mixup_alpha=bad)
    with pytest.raises(ConfigError, match=r"mixup_alpha and task\.distill_from"):
        ShapesSphereConfig(collection="modelnet10", mixup_alpha=0.2, distill_from=["x"], distill_weight=0.5)
    task = ShapesSphereTask()
    task.mixup_alpha = 0.4
    w = torch.randn(3, 2 * 4 * 4, generator=torch.Generator().manual_seed(1))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32, 3, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(w)
    x = torch.randn(6, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(7)
    loss, _ = task.loss(net.train(), (x, y))
    # independent reference: the same draws from the global generator, in NumPy
    torch.manual_seed(7)
    lam = float(torch.distributions.Beta(0.4, 0.4).sample())
    perm = torch.randperm(6).numpy()
    xm = lam * x.numpy().astype(np.float64) + (1 - lam) * x.numpy().astype(np.float64)[perm]
    z = xm.reshape(6, -1) @ w.numpy().astype(np.float64).T
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    yn = y.numpy()
    ref = -(lam * logp[np.arange(6), yn] + (1 - lam) * logp[np.arange(6), yn[perm]]).mean()
    assert 0 < lam < 1 and not np.array_equal(perm, np.arange(6))
    assert abs(float(loss) - ref) < 1e-5
    # evaluation is plain cross-entropy on the unmixed batch
    loss_eval, _ = task.loss(net.eval(), (x, y))
    assert torch.allclose(loss_eval, torch.nn.functional.cross_entropy(net(x), y))
