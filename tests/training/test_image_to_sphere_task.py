"""The image-to-sphere training task: it learns the view dataset's targets, refuses a network
of another shape than the targets, and trains from a config that names its task."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from equivision.cli import main
from equivision.data.procedural import make_shape
from equivision.errors import ConfigError
from equivision.models.spherical_cnn import SphericalCNN, SphericalCNNConfig
from equivision.tasks.image_to_sphere import ImageToSphereTaskConfig, map_rel_l2, open_views
from equivision.tasks.views import ViewConfig, build_view_dataset, sources_from_meshes
from equivision.training import get_task, train

B = 8


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    teacher = SphericalCNN(SphericalCNNConfig(stem_channels=4, channels=[4], bandwidths=[B, 4])).eval()
    meshes = [(f"{fam}-1", i, make_shape(fam, 1).mesh(16))
              for i, fam in enumerate(("box", "cone", "capsule"))]
    out = tmp_path_factory.mktemp("i2s") / "views"
    build_view_dataset(out, sources_from_meshes(meshes), teacher,
                       ViewConfig(views=4, dof=3, bandwidth=B, layer="stage1", shard_size=2, seed=1),
                       show_progress=False)
    return out


def _model(**kw) -> dict:
    return {"in_channels": 3, "image_size": 64, "bandwidth": 4, "out_channels": 4, "width": 4,
            "max_width": 8, "code_dim": 16, **kw}


def _run(views: Path, steps: int, **model) -> dict:
    return {"train": {"steps": steps, "batch_size": 4, "lr": 3e-3, "eval_every": steps, "log_every": 1,
                      "checkpoint_every": steps, "seed": 0, "device": "cpu", "warmup_steps": 0},
            "task": {"train_views": str(views), "eval_views": str(views), "model": _model(**model)}}


def _eval_rel_l2(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["value"]) for r in csv.DictReader(f)
                if r["split"] == "eval" and r["metric"] == "rel_l2"]


def test_training_fits_the_targets(tmp_path, views) -> None:
    task = get_task("image-to-sphere")
    cfg = ImageToSphereTaskConfig(train_views=str(views), eval_views=str(views), model=_model_cfg())
    ds = open_views(str(views), cfg)
    image, target = ds[0]
    assert image.shape == (3, 64, 64) and target.shape == (4, 8, 8)
    torch.manual_seed(0)
    before = task.build_model(cfg).eval()
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.stack([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        start = float(map_rel_l2(before(x), y))
    train(task, _run(views, 60), tmp_path / "run", console=None)
    end = _eval_rel_l2(tmp_path / "run")[-1]
    assert end < 0.8 * start, (start, end)


def _model_cfg(**kw):
    from equivision.models.image_to_sphere import ImageToSphereConfig

    return ImageToSphereConfig(**_model(**kw))


@pytest.mark.parametrize(("model", "channels", "match"), [
    ({"bandwidth": 8}, None, "bandwidth 4"),
    ({"out_channels": 5}, None, "4 channels"),
    ({"image_size": 128}, None, "64² images"),
    ({"in_channels": 1}, ["depth"], "channels"),
    ({}, ["depth", "shading", "silhouette"], "order"),
])
def test_a_network_of_another_shape_is_refused(views, model, channels, match) -> None:
    kw = {} if channels is None else {"channels": channels}
    cfg = ImageToSphereTaskConfig(train_views=str(views), eval_views=str(views),
                                  model=_model_cfg(**model), **kw)
    if channels == ["depth"]:  # a subset the dataset has is fine; this one is
        assert open_views(str(views), cfg)[0][0].shape == (1, 64, 64)
        return
    with pytest.raises(ConfigError, match=match):
        open_views(str(views), cfg)


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="in_channels"):
        ImageToSphereTaskConfig(channels=["shading"], model=_model_cfg())
    with pytest.raises(ConfigError, match="repeats"):
        ImageToSphereTaskConfig(channels=["shading", "shading", "depth"], model=_model_cfg())
    with pytest.raises(ConfigError, match="delta"):
        ImageToSphereTaskConfig(delta=0.0, model=_model_cfg())
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="odd_weight"):
            ImageToSphereTaskConfig(odd_weight=bad, model=_model_cfg())


def test_odd_weight_adds_the_odd_parts_huber_term() -> None:
    from equivision.nn.losses import area_weighted_huber
    from equivision.sphere.grid import odd_part
    from equivision.tasks.image_to_sphere import ImageToSphereTask

    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    pred = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return pred

    task = ImageToSphereTask()
    base, m0 = task.loss(Fixed(), (None, target))
    assert torch.allclose(base, area_weighted_huber(pred, target, delta=1.0))
    task._odd_weight = 2.5
    got, m1 = task.loss(Fixed(), (None, target))
    extra = area_weighted_huber(odd_part(pred), odd_part(target), delta=1.0)
    assert extra > 0 and torch.allclose(got, base + 2.5 * extra)
    assert torch.allclose(m0["odd_rel_l2"], m1["odd_rel_l2"]) and "rel_l2" in m1
    # pooled over the batch: one ratio of summed, area-weighted squares (NumPy reference)
    import numpy as np

    d, t = (odd_part(pred) - odd_part(target)).numpy(), odd_part(target).numpy()
    w = np.sin(np.pi * (2 * np.arange(8) + 1) / 16)[:, None]
    want = np.sqrt((d ** 2 * w).sum() / (t ** 2 * w).sum())
    assert float(m1["odd_rel_l2"]) == pytest.approx(want, rel=1e-12)


def test_cli_trains_from_a_config_that_names_its_task(tmp_path, views, capsys) -> None:
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"task_name": "image-to-sphere", **_run(views, 2)}))
    assert main(["train", "-c", str(cfg), "--run", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "metrics.csv").is_file()
    capsys.readouterr()
    assert main(["train", "toy", "-c", str(cfg), "--run", str(tmp_path / "r2")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
