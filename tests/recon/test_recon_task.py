"""The ``recon`` training task: config checks, patch items, and a short run that learns."""

from __future__ import annotations

import pytest
import torch

from equivision.errors import ConfigError
from equivision.models.peif import PEIFConfig
from equivision.tasks.recon import ReconConfig, ReconTask
from equivision.training import get_task, list_tasks, train

TINY = {
    "k": 8,
    "feature_dim": 8,
    "top_k": 2,
    "memory_heads": 1,
    "memory_items": 4,
    "mlp_a": [32, 32],
    "mlp_d": [32],
}


def _config(tmp_path, steps=12):
    return {
        "task_name": "recon",
        "train": {
            "steps": steps,
            "batch_size": 2,
            "lr": 3e-3,
            "log_every": 4,
            "device": "cpu",
            "schedule": "constant",
        },
        "task": {
            "data_dir": str(tmp_path / "data"),
            "procedural_per_family": 1,
            "eval_procedural_per_family": 1,
            "use_abc": False,
            "n_points": 400,
            "prep_queries": 256,
            "queries_per_item": 64,
            "repeats": 3,
            "model": TINY,
        },
    }


def test_registered_and_config_checks():
    assert "recon" in list_tasks()
    assert isinstance(get_task("recon"), ReconTask)
    with pytest.raises(ConfigError, match="n_points"):
        ReconConfig(n_points=10, model=PEIFConfig(k=32))
    with pytest.raises(ConfigError):
        ReconConfig(repeats=0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_modelnet10_per_class_is_checked(bad):
    with pytest.raises(ConfigError, match="modelnet10_per_class"):
        ReconConfig(modelnet10_per_class=bad)


def test_modelnet10_training_meshes_come_from_the_training_split(data_root):
    from equivision.data import mesh_files
    from equivision.tasks.recon import modelnet10_training_meshes, recon_sources

    picked = modelnet10_training_meshes(3, seed=0)
    assert picked == modelnet10_training_meshes(3, seed=0)  # seeded: the same files again
    assert picked != modelnet10_training_meshes(3, seed=1)
    train = set(mesh_files("modelnet10", split="train"))
    assert len(picked) == 30 and len(set(picked)) == 30 and set(picked) <= train
    classes = [p.parent.name for p in picked]  # modelnet10/train/<class>/<mesh>
    assert all(classes.count(c) == 3 for c in set(classes)) and len(set(classes)) == 10
    cfg = ReconConfig(modelnet10_per_class=2)
    train_src, eval_src, note = recon_sources(cfg)
    names = [s.name for s in train_src]
    assert sum(n.startswith("modelnet10-") for n in names) == 20 and "20 ModelNet10" in note
    assert not any(s.name.startswith("modelnet10-") for s in eval_src)
    assert [s.name for s in recon_sources(ReconConfig())[0]] == [n for n in names
                                                                 if not n.startswith("modelnet10-")]


def test_items_are_canonical_patches_and_deterministic(tmp_path):
    task = get_task("recon")
    from equivision.training import build_run_config

    cfg = build_run_config("recon", ReconConfig, _config(tmp_path)).task
    train_ds, eval_ds = task.datasets(cfg)
    assert len(train_ds) == 8 * 3 and len(eval_ds) == 8
    a, b = train_ds[5], train_ds[5]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["patches"].shape == (64, 8, 3) and a["rotations"].shape == (64, 3, 3)
    # canonical patches are centred and their covariance is diagonal, variances descending
    p = a["patches"].double()
    assert float(p.mean(1).abs().max()) < 1e-5
    cov = p.transpose(1, 2) @ p / p.shape[1]
    off = cov - torch.diag_embed(torch.diagonal(cov, dim1=1, dim2=2))
    assert float(off.abs().max() / cov.abs().max()) < 1e-4
    var = torch.diagonal(cov, dim1=1, dim2=2)
    assert bool((var[:, 0] >= var[:, 1] - 1e-9).all() and (var[:, 1] >= var[:, 2] - 1e-9).all())
    assert torch.allclose(torch.linalg.det(a["rotations"]), torch.ones(64), atol=1e-5)


def test_items_without_pose_normalization_are_centred_in_world_axes(tmp_path):
    from equivision.training import build_run_config

    cfg_dict = _config(tmp_path)
    cfg_dict["task"]["model"] = {**TINY, "pose_normalization": False}
    cfg = build_run_config("recon", ReconConfig, cfg_dict).task
    assert cfg.model.pose_normalization is False
    train_ds, _ = get_task("recon").datasets(cfg)
    a = train_ds[5]
    assert torch.equal(a["rotations"], torch.eye(3).expand(64, 3, 3))
    assert float(a["patches"].double().mean(1).abs().max()) < 1e-6
    # the same K-NN sets as the default items, translated only: pairwise offsets are kept
    ref = get_task("recon").datasets(build_run_config("recon", ReconConfig, _config(tmp_path)).task)[0][5]
    d_ablation = torch.cdist(a["patches"].double(), a["patches"].double())
    d_default = torch.cdist(ref["patches"].double(), ref["patches"].double())
    assert torch.allclose(d_ablation, d_default, atol=1e-5)


def test_a_short_run_reduces_the_displacement_error(tmp_path):
    result = train("recon", _config(tmp_path, steps=24), tmp_path / "run", progress=False)
    from equivision.training import read_metrics

    l1 = [v for step, split, name, v in read_metrics(result.run_dir) if split == "train" and name == "l1"]
    assert len(l1) >= 3 and l1[-1] < l1[0]
    assert torch.isfinite(torch.tensor(result.eval_metrics["l1"]))
