"""Ray-cast channels in the shapes-sphere data and task configs: checks, cache keys that
earlier caches still match, the channels reaching the signals and the model."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from equivision.data.cache import cache_key
from equivision.data.shapes_sphere import (
    SIGNAL_VERSION,
    SphereDataConfig,
    make_sphere_split,
    signals_cache_path,
)
from equivision.errors import CheckpointError, ConfigError, InvalidInputError
from equivision.models.equirect_cnn import EquirectCNNConfig
from equivision.models.spherical_cnn import SphericalCNNConfig
from equivision.tasks.shapes_sphere import ShapesSphereBaselineConfig, ShapesSphereConfig, load_teacher
from equivision.training import train

HULL4 = ("distance", "cosine", "hull_distance", "hull_cosine")
SMALL = dict(collection="procedural", bandwidth=8, train_rotations=2, test_rotations=1,
             procedural_train_per_family=1, procedural_test_per_family=1)


def test_default_channels_keep_the_cache_key_of_earlier_caches(tmp_path):
    """The key of a configuration without channels, as it was computed before they existed
    (its fields, SIGNAL_VERSION 2, no source files), pinned: those caches must stay valid."""
    cfg = SphereDataConfig(collection="procedural")
    assert SIGNAL_VERSION == 2
    path = signals_cache_path(cfg, tmp_path)
    assert path.name == "procedural-so3-so3-b32-900622bcedbe4760.safetensors"
    old_fields = {k: v for k, v in asdict(cfg).items()
                  if k not in ("channels", "train_scale_range", "train_scalings")}
    assert path.name.endswith(cache_key(old_fields, SIGNAL_VERSION, []) + ".safetensors")
    # the default spelled out (a JSON list) is the same configuration
    assert signals_cache_path(SphereDataConfig(collection="procedural", channels=["distance", "cosine"]),
                              tmp_path) == path
    hull = signals_cache_path(SphereDataConfig(collection="procedural", channels=HULL4), tmp_path)
    swapped = signals_cache_path(SphereDataConfig(collection="procedural", channels=("cosine", "distance")),
                                 tmp_path)
    assert len({path, hull, swapped}) == 3


def test_hull_channels_reach_the_signals(tmp_path):
    base = make_sphere_split(SphereDataConfig(**SMALL), tmp_path, show_progress=False)
    hull = make_sphere_split(SphereDataConfig(**SMALL, channels=HULL4), tmp_path, show_progress=False)
    assert hull.train_x.shape == (16, 4, 16, 16) and hull.test_x.shape == (8, 4, 16, 16)
    assert len(list(tmp_path.iterdir())) == 2  # one cache file each
    assert torch.equal(hull.train_x[:, :2], base.train_x) and torch.equal(hull.train_y, base.train_y)
    assert bool((hull.train_x[:, 2] <= hull.train_x[:, 0] + 1e-6).all())
    # the torus family: its hull covers the hole
    assert bool((hull.train_x[:, 2] < hull.train_x[:, 0] - 0.05).any())


@pytest.mark.parametrize("bad", [("depth",), (), ("distance", "distance")])
def test_bad_channels_are_refused(bad):
    with pytest.raises(InvalidInputError, match="channels"):
        SphereDataConfig(channels=bad)
    with pytest.raises(ConfigError, match=r"task\.channels"):
        ShapesSphereConfig(channels=list(bad), model=SphericalCNNConfig(in_channels=max(len(bad), 1)))


def test_in_channels_must_match_the_channels():
    with pytest.raises(ConfigError, match=r"in_channels \(2\).*task.channels \(4"):
        ShapesSphereConfig(channels=list(HULL4))
    with pytest.raises(ConfigError, match=r"in_channels \(4\).*task.channels \(2"):
        ShapesSphereConfig(model=SphericalCNNConfig(in_channels=4))
    with pytest.raises(ConfigError, match="in_channels"):
        ShapesSphereBaselineConfig(channels=list(HULL4))
    cfg = ShapesSphereConfig(channels=list(HULL4), model=SphericalCNNConfig(in_channels=4))
    assert cfg.data_config().channels == HULL4
    assert ShapesSphereBaselineConfig(channels=list(HULL4), model=EquirectCNNConfig(in_channels=4))


def test_a_teacher_reading_other_channels_is_refused():
    with pytest.raises(CheckpointError, match="2 input channels"):
        load_teacher("shapes_sphere_modelnet10", SphereDataConfig(collection="modelnet10", channels=HULL4))


def test_short_run_on_hull_channels_and_its_classifier(tmp_path):
    cfg = {
        "train": {"steps": 3, "batch_size": 8, "lr": 1e-3, "device": "cpu"},
        "task": {**SMALL, "cache_dir": str(tmp_path / "cache"), "channels": list(HULL4),
                 "model": {"num_classes": 8, "in_channels": 4, "bandwidths": [8, 4, 2, 1],
                           "stem_channels": 4, "channels": [4, 4, 4]}},
    }
    r = train("shapes-sphere", cfg, tmp_path / "s", progress=False)
    assert 0 <= r.eval_metrics["accuracy"] <= 100
    # the classifier pipeline casts the channels the run recorded (two would be refused)
    from equivision.data.procedural import make_shape
    from equivision.pipelines.classify import classify_mesh, load_classifier

    net, classes = load_classifier(str(tmp_path / "s"))
    assert net.input_channels == HULL4
    probs = classify_mesh(make_shape("torus", 0).mesh(24), net, classes).probabilities
    assert probs.shape == (8,) and abs(float(probs.sum()) - 1) < 1e-5

    # as a teacher of view datasets and of mesh embeddings: the maps are those of its channels
    from equivision.render.sphere import raycast_sphere
    from equivision.tasks.shapes_sphere import teacher_channels
    from equivision.tasks.views import ViewConfig, build_view_dataset, resolve_teacher, sources_from_meshes

    teacher, _ = resolve_teacher(str(tmp_path / "s"), ViewConfig(bandwidth=8, layer="stem"))
    assert teacher_channels(teacher) == HULL4
    mesh = make_shape("box", 1).mesh(24)
    m = build_view_dataset(tmp_path / "views", sources_from_meshes([("box", 0, mesh)]), str(tmp_path / "s"),
                           ViewConfig(views=2, bandwidth=8, layer="stem"), show_progress=False)
    assert m["items"] == 2
    from equivision.tasks.views import ViewDataset

    item = ViewDataset(tmp_path / "views")[0]
    x = raycast_sphere(mesh, 8, channels=HULL4)
    with torch.no_grad():
        canon = teacher.features(x[None], "stem")[0]
    from equivision.tasks.views import rotated_targets

    assert torch.allclose(item[1], rotated_targets(canon, item[2][None].double())[0].float(), atol=1e-5)
    teacher.input_channels = ("distance", "cosine")  # a count the network does not read
    with pytest.raises(CheckpointError, match="4 input channels"):
        teacher_channels(teacher)
