"""shapes-sphere data and tasks: splits, protocols, caching, config checks, a short run."""

from __future__ import annotations

import pytest
import torch

from equivision.data.shapes_sphere import SphereDataConfig, make_sphere_split, upright_rotations
from equivision.errors import ConfigError, InvalidInputError
from equivision.groups import SO3
from equivision.models import count_parameters
from equivision.models.equirect_cnn import EquirectCNN, EquirectCNNConfig
from equivision.models.spherical_cnn import SphericalCNN, SphericalCNNConfig
from equivision.tasks.shapes_sphere import ShapesSphereConfig
from equivision.training import list_tasks, train

SMALL = dict(
    collection="procedural",
    bandwidth=8,
    train_rotations=2,
    test_rotations=1,
    procedural_train_per_family=1,
    procedural_test_per_family=1,
)


def test_upright_rotations_put_up_on_the_pole_and_spin_about_it():
    r = upright_rotations(10, seed=0)
    SO3.check(r)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    pole = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(r @ up, pole.expand(10, 3))
    # so two upright poses differ by a rotation about the pole: an azimuthal shift of the grid
    rel = r[1] @ r[0].T
    assert torch.allclose(rel @ pole, pole)


def test_procedural_split_is_cached_and_deterministic(tmp_path):
    cfg = SphereDataConfig(**SMALL)
    a = make_sphere_split(cfg, tmp_path, show_progress=False)
    assert a.train_x.shape == (8 * 2, 2, 16, 16) and a.test_x.shape == (8, 2, 16, 16)
    assert a.train_y.bincount().tolist() == [2] * 8
    assert len(list(tmp_path.iterdir())) == 1
    b = make_sphere_split(cfg, tmp_path, show_progress=False)  # from the cache
    assert torch.equal(a.train_x, b.train_x) and a.classes == b.classes
    assert float(a.train_x[:, 0].min()) >= 0 and float(a.train_x[:, 0].max()) <= 2


def test_shapenet_split_keeps_test_objects_out(tmp_path, data_root):
    from equivision.data.shapes_sphere import _sources

    train, test, classes = _sources(SphereDataConfig(collection="shapenet10"))
    assert len(classes) == 10
    assert not {n for n, _, _ in train} & {n for n, _, _ in test}
    assert {lab for _, lab, _ in test} == set(range(10))  # every class is tested


def test_config_checks():
    with pytest.raises(InvalidInputError):
        SphereDataConfig(protocol="z/z")
    with pytest.raises(ConfigError, match="bandwidth"):
        ShapesSphereConfig(bandwidth=16)  # the model reads a B=32 grid by default


def test_baseline_has_a_matched_parameter_count():
    n_s = count_parameters(SphericalCNN(SphericalCNNConfig()))
    n_b = count_parameters(EquirectCNN(EquirectCNNConfig()))
    assert abs(n_s - n_b) / n_s < 0.05


def test_short_runs_of_both_tasks(tmp_path):
    assert {"shapes-sphere", "shapes-sphere-baseline"} <= set(list_tasks())
    task = {**SMALL, "cache_dir": str(tmp_path / "cache")}
    cfg = {
        "train": {"steps": 4, "batch_size": 8, "lr": 1e-3, "device": "cpu"},
        "task": {
            **task,
            "model": {
                "num_classes": 8,
                "bandwidths": [8, 4, 2, 1],
                "stem_channels": 4,
                "channels": [4, 4, 4],
            },
        },
    }
    r = train("shapes-sphere", cfg, tmp_path / "s", progress=False)
    assert 0 <= r.eval_metrics["accuracy"] <= 100
    cfg_b = {"train": cfg["train"], "task": {**task, "model": {"num_classes": 8, "channels": [4, 4]}}}
    r = train("shapes-sphere-baseline", cfg_b, tmp_path / "b", progress=False)
    assert 0 <= r.eval_metrics["accuracy"] <= 100
