"""The data registry: collections, splits, label orders, up axes; the seed rules; the
shapes-sphere task config built on SphereDataConfig; class lists in classifier checkpoints."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields

import pytest
import torch

from equivision.data import (
    MODELNET10_CLASSES,
    SHAPENET10_CLASSES,
    class_names,
    get_collection,
    list_entries,
    mesh_files,
    up_axis,
    up_rotation,
)
from equivision.data.registry import shapenet10_split
from equivision.data.seeds import (
    derive_seed,
    epoch_seed,
    eval_seed,
    name_seed,
    rank_seed,
    shuffle_seed,
    stream_seed,
)
from equivision.errors import ConfigError, DataNotAvailableError, InvalidInputError, UnknownDatasetError


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A data root with an empty-file ModelNet10 (2 train, 1 test per class) and a ShapeNet
    class of 5 files, for tests that need no real data."""
    for cls in MODELNET10_CLASSES:
        for split, n in (("train", 2), ("test", 1)):
            d = tmp_path / "modelnet10" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{cls}_{split}_{i}.ply").write_bytes(b"")
    monkeypatch.setenv("EQUIVISION_DATA", str(tmp_path))
    return tmp_path


def test_label_orders_and_up_axes():
    assert MODELNET10_CLASSES == ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand",
                                  "sofa", "table", "toilet")
    assert class_names("modelnet10") == MODELNET10_CLASSES
    assert class_names("shapenet10") == SHAPENET10_CLASSES == tuple(sorted(SHAPENET10_CLASSES))
    from equivision.data.procedural import FAMILIES

    assert class_names("procedural") == tuple(FAMILIES)
    assert (up_axis("shapenet10"), up_axis("modelnet10"), up_axis("procedural")) == ("+y", "+z", "+y")
    assert up_axis("abc") is None
    with pytest.raises(UnknownDatasetError, match="no class labels"):
        class_names("abc")
    with pytest.raises(UnknownDatasetError):
        up_axis("modelnet40")


def test_up_rotation_takes_one_axis_onto_another():
    axes = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1),
            "-z": (0, 0, -1)}
    for s, a in axes.items():
        for d, b in axes.items():
            r = up_rotation(s, d)
            assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64)), (s, d)
            assert torch.isclose(torch.linalg.det(r), torch.tensor(1.0, dtype=torch.float64)), (s, d)
            assert torch.equal(r @ torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    # ModelNet's z-up objects brought to ShapeNet's y-up convention
    zy = up_rotation(up_axis("modelnet10"), up_axis("shapenet10"))
    assert torch.equal(zy, torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=torch.float64))
    with pytest.raises(InvalidInputError):
        up_rotation("up", "+y")


def test_shapenet_split_rule():
    assert [shapenet10_split(i, 1) for i in range(1)] == ["test"]
    assert [shapenet10_split(i, 3) for i in range(3)] == ["train", "train", "test"]
    assert [i for i in range(9) if shapenet10_split(i, 9) == "test"] == [3, 7]


def test_modelnet10_entries_from_the_folders(fake_root, monkeypatch):
    import equivision.io.meshes as meshes

    def no_loading(*a, **k):
        raise AssertionError("listing entries must not read a mesh")

    monkeypatch.setattr(meshes, "load_mesh", no_loading)
    entries = list_entries("modelnet10")
    assert len(entries) == 30
    assert [e.label for e in entries] == [lab for lab in range(10) for _ in range(3)]
    assert all(e.path.parent.name == e.cls == MODELNET10_CLASSES[e.label] for e in entries)
    assert all(e.path.parent.parent.name == e.split for e in entries)
    assert [e.split for e in entries[:3]] == ["train", "train", "test"]
    assert len(list_entries("modelnet10", "test")) == 10
    c = get_collection("modelnet10")
    assert c.up == "+z" and c.splits == {"train": 20, "test": 10} and c.count == 30
    assert c.classes == {k: 3 for k in MODELNET10_CLASSES}
    assert len(mesh_files("modelnet10", "sofa")) == 3
    assert len(mesh_files("modelnet10", "sofa", split="train")) == 2
    with pytest.raises(InvalidInputError, match="split"):
        list_entries("modelnet10", "val")
    shutil.rmtree(fake_root / "modelnet10" / "test" / "sofa")
    shutil.rmtree(fake_root / "modelnet10" / "train" / "sofa")
    with pytest.raises(DataNotAvailableError, match="sofa"):
        list_entries("modelnet10")
    with pytest.raises(UnknownDatasetError):
        list_entries("abc")
    with pytest.raises(DataNotAvailableError):
        list_entries("shapenet10")  # not in this root


def test_real_modelnet10(data_root):
    if not (data_root / "modelnet10").is_dir():
        pytest.skip(f"{data_root}/modelnet10 is absent")
    entries = list_entries("modelnet10", root=data_root)
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    assert len(train) == len(list((data_root / "modelnet10" / "train").glob("*/*.ply"))) > 0
    assert len(test) == len(list((data_root / "modelnet10" / "test").glob("*/*.ply"))) > 0
    assert {e.label for e in test} == set(range(10))
    assert not {e.path for e in train} & {e.path for e in test}


def test_real_shapenet10_split(data_root):
    entries = list_entries("shapenet10", root=data_root)
    assert {e.label for e in entries if e.split == "test"} == set(range(10))
    for label, cls in enumerate(SHAPENET10_CLASSES):
        mine = [e for e in entries if e.label == label]
        files = sorted((data_root / "shapenet10" / cls).glob("*.ply"))
        assert [e.path for e in mine] == files
        assert [e.split for e in mine] == [shapenet10_split(i, len(files)) for i in range(len(files))]


def test_seed_rules_reproduce_the_historical_formulas():
    import zlib

    for seed, i in ((0, 0), (3, 7), (12, 99_999)):
        assert derive_seed(seed, i) == seed * 100_003 + i
        assert stream_seed(seed, i) == seed * 1_000_003 + i
        assert epoch_seed(seed, 2, i) == seed * 1_000_003 + 2 * 10_007 + i
        assert name_seed(seed, "box-1") == (seed * 1_000_003 + zlib.crc32(b"box-1")) % 2**63
        assert shuffle_seed(seed, i) == seed * 7919 + i
        assert rank_seed(seed, i) == seed + 1_000_003 * i
        assert eval_seed(seed) == seed + 7919
    assert name_seed(1, "a") != name_seed(1, "b")


def test_task_config_reuses_every_data_field():
    from equivision.data.shapes_sphere import SphereDataConfig
    from equivision.tasks.shapes_sphere import ShapesSphereBaselineConfig, ShapesSphereConfig
    from equivision.training import build_run_config

    data_names = [f.name for f in fields(SphereDataConfig)]
    for cls in (ShapesSphereConfig, ShapesSphereBaselineConfig):
        names = [f.name for f in fields(cls)]
        assert names[: len(data_names)] == data_names
        assert {f.name: f.default for f in fields(cls) if f.name in data_names} == \
            {f.name: f.default for f in fields(SphereDataConfig)}
    with open("configs/shapes_sphere_default.json") as f:
        run = build_run_config("shapes-sphere", ShapesSphereConfig, json.load(f))
    assert run.task.data_config() == SphereDataConfig(collection="shapenet10", protocol="so3-so3")
    assert run.task.classes == list(SHAPENET10_CLASSES)
    assert ShapesSphereBaselineConfig(collection="procedural").classes == list(class_names("procedural"))
    with pytest.raises(ConfigError, match="classes"):
        ShapesSphereConfig(classes=["chair", "aeroplane"])
    with pytest.raises(ConfigError, match="collection"):
        ShapesSphereConfig(collection="modelnet40")


def test_classifier_reads_its_class_list(tmp_path, monkeypatch):
    import equivision.models as models
    from equivision.pipelines.classify import load_classifier

    src = models.PRETRAINED_DIR / "shapes_sphere_shapenet10"
    meta = json.loads(src.with_suffix(".json").read_text())
    assert meta["config"]["task"]["classes"] == list(SHAPENET10_CLASSES)
    shutil.copy(src.with_suffix(".safetensors"), tmp_path / "c.safetensors")
    monkeypatch.setattr(models, "PRETRAINED_DIR", tmp_path)
    meta["config"]["task"]["classes"] = list(reversed(SHAPENET10_CLASSES))
    (tmp_path / "c.json").write_text(json.dumps(meta))
    assert load_classifier("c")[1] == tuple(reversed(SHAPENET10_CLASSES))
    del meta["config"]["task"]["classes"]  # an older checkpoint: the registry's order
    (tmp_path / "c.json").write_text(json.dumps(meta))
    assert load_classifier("c")[1] == SHAPENET10_CLASSES
