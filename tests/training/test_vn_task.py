"""The ModelNet10 point-cloud tasks: sampling, normalisation, protocols' rotations, configs, a
tiny training run, and ``equivision classify`` with a point-cloud model (bad input: one line,
exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from equivision.cli import main
from equivision.data.registry import MODELNET10_CLASSES, find_data_root
from equivision.errors import ConfigError, DegenerateGeometryError
from equivision.groups import SO3
from equivision.models.vector_neurons import VNPointNetConfig
from equivision.tasks.modelnet_points import (
    RotatedClouds,
    VNPointNetTaskConfig,
    load_clouds,
    normalize_cloud,
    random_rotations,
)
from equivision.training import train

_ROOT = find_data_root()
HAS_MODELNET = _ROOT is not None and (_ROOT / "modelnet10").is_dir()
needs_data = pytest.mark.skipif(not HAS_MODELNET, reason="the shared ModelNet10 data is not on this machine")

TINY_MODEL = {"k": 4, "channels": [4, 5, 6], "head": [8], "dropout": 0.0}


def test_normalize_cloud_is_centred_unit_radius_and_commutes_with_rotation():
    pts = torch.randn(50, 3, dtype=torch.float64) * 3 + 7
    n = normalize_cloud(pts)
    assert torch.allclose(n.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert float(n.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-12)
    r = SO3().random(1, seed=2, dtype=torch.float64)[0]
    assert torch.allclose(normalize_cloud(pts @ r.T), n @ r.T, atol=1e-12)
    with pytest.raises(DegenerateGeometryError, match="one place"):
        normalize_cloud(torch.ones(30, 3))


def test_rotations_of_the_protocols():
    g = torch.Generator().manual_seed(0)
    for kind in ("z", "so3"):
        r = random_rotations(kind, 64, g)
        eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
        assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-12)
        assert torch.allclose(torch.linalg.det(r), torch.ones(64, dtype=torch.float64), atol=1e-12)
    z = random_rotations("z", 8, g)
    assert torch.allclose(z[:, :, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(8, 3))
    # so3 rotations move the up axis everywhere (not only about +z)
    assert float(random_rotations("so3", 64, g)[:, 2, 2].min()) < 0


def test_train_rotations_are_fresh_and_test_rotations_fixed():
    pts, labels = torch.randn(4, 16, 3), torch.arange(4)
    torch.manual_seed(0)
    train_ds, test_ds = RotatedClouds(pts, labels, "so3", None), RotatedClouds(pts, labels, "so3", 5)
    assert not torch.allclose(train_ds[1][0], train_ds[1][0])
    assert torch.equal(test_ds[1][0], test_ds[1][0])
    assert torch.equal(RotatedClouds(pts, labels, "so3", 5)[2][0], test_ds[2][0])  # seeded
    assert not torch.allclose(test_ds[1][0], pts[1])
    assert train_ds[3][1] == 3


def test_config_is_validated():
    for bad in ({"protocol": "z-y"}, {"n_points": 2}, {"classes": ["a"]}, {"max_train_per_class": -1},
                {"model": {"num_classes": 4}}):
        model = VNPointNetConfig(**{**TINY_MODEL, **bad.pop("model", {})})
        with pytest.raises(ConfigError):
            VNPointNetTaskConfig(**bad, model=model)
    cfg = VNPointNetTaskConfig()
    assert cfg.classes == list(MODELNET10_CLASSES) and cfg.protocol == "so3-so3"


@needs_data
def test_clouds_are_sampled_once_and_cached(tmp_path):
    pts, labels = load_clouds("test", 64, 0, 1, tmp_path)
    assert pts.shape == (10, 64, 3) and labels.tolist() == list(range(10))
    radius = pts.double().norm(dim=2).amax(1)
    assert torch.allclose(radius, torch.ones(10, dtype=torch.float64), atol=1e-6)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    again, _ = load_clouds("test", 64, 0, 1, tmp_path)
    assert torch.equal(again, pts)
    other, _ = load_clouds("test", 64, 1, 1, tmp_path)  # another sample seed: other points
    assert not torch.allclose(other, pts)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    if not HAS_MODELNET:
        pytest.skip("the shared ModelNet10 data is not on this machine")
    d = tmp_path_factory.mktemp("vn")
    cfg = {"train": {"steps": 3, "batch_size": 5, "eval_every": 3, "checkpoint_every": 3, "log_every": 1,
                     "device": "cpu", "seed": 0},
           "task": {"protocol": "z-so3", "n_points": 32, "max_train_per_class": 1, "max_test_per_class": 1,
                    "cache_dir": str(d / "cache"), "model": TINY_MODEL}}
    import io

    from rich.console import Console

    res = train("modelnet-vn-pointnet", cfg, d / "run", console=Console(file=io.StringIO()))
    return d, res


def test_a_tiny_training_run(trained_run):
    d, res = trained_run
    assert "accuracy" in res.eval_metrics and 0 <= res.eval_metrics["accuracy"] <= 100
    saved = json.loads((d / "run" / "config.json").read_text())
    assert saved["task"]["classes"] == list(MODELNET10_CLASSES)


def _classify(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["classify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_a_mesh_and_a_cloud_with_a_point_model(trained_run, capsys, tmp_path):
    d, _ = trained_run
    mesh = sorted((find_data_root() / "modelnet10" / "test" / "chair").glob("*.ply"))[0]
    code, out, err = _classify(capsys, str(mesh), "--model", str(d / "run"), "--json")
    assert code == 0, err
    probs = json.loads(out)
    assert list(probs) == list(MODELNET10_CLASSES) and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    cloud = tmp_path / "cloud.xyz"
    pts = np.random.default_rng(0).normal(size=(3000, 3))
    np.savetxt(cloud, pts)
    code, out, err = _classify(capsys, str(cloud), "--model", str(d / "run"), "--json")
    assert code == 0, err
    # a rotated copy gets the same answer (rotation-invariant model; subsampling is by index)
    r = SO3().random(1, seed=4, dtype=torch.float64)[0].numpy()
    np.savetxt(tmp_path / "rot.xyz", pts @ r.T)
    code, out_rot, err = _classify(capsys, str(tmp_path / "rot.xyz"), "--model", str(d / "run"), "--json")
    assert code == 0, err
    a, b = json.loads(out), json.loads(out_rot)
    assert all(abs(a[c] - b[c]) < 1e-4 for c in a)


@pytest.mark.parametrize("case", ["nan", "few", "identical", "columns"])
def test_classify_refuses_bad_clouds_in_one_line(trained_run, capsys, tmp_path, case):
    d, _ = trained_run
    pts = np.random.default_rng(1).normal(size=(100, 3))
    if case == "nan":
        pts[5, 1] = np.nan
    elif case == "few":
        pts = pts[:3]  # k = 4
    elif case == "identical":
        pts = np.ones((100, 3))
    elif case == "columns":
        pts = pts[:, :2]
    f = tmp_path / "bad.xyz"
    np.savetxt(f, pts)
    code, _out, err = _classify(capsys, str(f), "--model", str(d / "run"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    want = {"nan": "NaN", "few": "at least 4", "identical": "one place", "columns": "columns"}[case]
    assert want in lines[0]


def test_pipeline_subsamples_seeded_and_refuses_bad_shapes():
    from equivision.errors import InvalidInputError, ShapeError
    from equivision.models import build_model
    from equivision.pipelines.classify import classify_points

    torch.manual_seed(0)
    net = build_model("vn_pointnet", TINY_MODEL).eval()
    classes = tuple(MODELNET10_CLASSES)
    pts = torch.randn(2000, 3, dtype=torch.float64)
    a = classify_points(pts, net, classes, n_points=64, seed=3).probabilities
    assert torch.equal(a, classify_points(pts, net, classes, n_points=64, seed=3).probabilities)
    assert not torch.equal(a, classify_points(pts, net, classes, n_points=64, seed=4).probabilities)
    with pytest.raises(ShapeError):
        classify_points(torch.randn(1, 20, 3), net, classes)
    with pytest.raises(InvalidInputError):
        classify_points(torch.zeros(20, 3, dtype=torch.int64), net, classes)


@pytest.mark.parametrize("name", ["vn_pointnet", "vn_dgcnn", "vn_baseline_pointnet", "vn_baseline_dgcnn"])
def test_the_shipped_configs_build(name):
    from pathlib import Path

    from equivision.training import get_task
    from equivision.training.config import build_run_config

    data = json.loads((Path(__file__).resolve().parents[2] / "configs" / f"{name}.json").read_text())
    rc = build_run_config(data["task_name"], get_task(data["task_name"]).config_cls, data)
    assert rc.task.n_points == 1024 and rc.task.protocol == "so3-so3"
    assert rc.task.model.k == 20 and rc.task.model.num_classes == 10


def test_evaluate_run_scores_the_test_set_under_either_rotation(trained_run):
    from equivision.tasks.modelnet_points import evaluate_run

    d, res = trained_run
    so3 = evaluate_run(d / "run", "so3")
    assert so3 == pytest.approx(res.eval_metrics["accuracy"], abs=1e-6)  # the run's own z-so3 eval
    assert evaluate_run(d / "run", "z") == so3  # an invariant model: the rotation does not matter
    with pytest.raises(ConfigError):
        evaluate_run(d / "run", "x")


def test_classify_with_a_packaged_point_model(trained_run, capsys, tmp_path, monkeypatch):
    import equivision.models as models

    d, _ = trained_run
    models.export_pretrained(d / "run", "vn_tiny", tmp_path)
    monkeypatch.setattr(models, "PRETRAINED_DIR", tmp_path)
    cloud = tmp_path / "c.xyz"
    np.savetxt(cloud, np.random.default_rng(2).normal(size=(500, 3)))
    code, out, err = _classify(capsys, str(cloud), "--model", "vn_tiny", "--json")
    assert code == 0, err
    by_run = _classify(capsys, str(cloud), "--model", str(d / "run"), "--json")[1]
    assert json.loads(out) == json.loads(by_run)


def test_compile_model_trains_the_plain_module():
    from equivision.training import get_task

    task = get_task("modelnet-vn-pointnet")
    plain = task.build_model(VNPointNetTaskConfig(model=VNPointNetConfig(**TINY_MODEL)))
    assert task._forward(plain) is plain  # off by default
    cfg = VNPointNetTaskConfig(model=VNPointNetConfig(**TINY_MODEL), compile_model=True)
    model = task.build_model(cfg)
    wrapped = task._forward(model)
    assert wrapped is not model and isinstance(wrapped, torch.nn.Module)
    # checkpoints hold the plain module's names, loadable without torch.compile
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())
    assert task._forward(plain) is plain  # another module is not routed through it
