"""The packaged shape classifier and `equivision classify`."""

from __future__ import annotations

import json

from equivision.cli import main
from equivision.data.procedural import make_shape
from equivision.errors import CheckpointError
from equivision.groups import SO3
from equivision.io import Mesh, save_mesh
from equivision.pipelines.classify import SHAPENET10_CLASSES, classify_mesh, load_classifier


def test_class_names_follow_the_registry(data_root):
    from equivision.data import get_collection

    assert tuple(sorted(get_collection("shapenet10").classes)) == SHAPENET10_CLASSES


def test_pretrained_classifier_is_rotation_invariant_in_practice():
    net, classes = load_classifier()
    assert classes == SHAPENET10_CLASSES
    mesh = make_shape("cylinder", 3).mesh(32)
    base = classify_mesh(mesh, net, classes).probabilities
    assert abs(float(base.sum()) - 1) < 1e-5
    for r in SO3().random(3, seed=0):
        moved = Mesh(mesh.vertices @ r.T, mesh.faces)
        p = classify_mesh(moved, net, classes).probabilities
        # ray casting re-samples the rotated mesh, so not exact: measured < 0.05 here
        assert float((p - base).abs().max()) < 0.05


def test_cli(tmp_path, capsys):
    path = save_mesh(make_shape("box", 0).mesh(24), tmp_path / "box.ply")
    assert main(["classify", str(path), "--top", "2"]) == 0
    assert "probability" in capsys.readouterr().out
    assert main(["classify", str(path), "--json"]) == 0
    probs = json.loads(capsys.readouterr().out)
    assert set(probs) == set(SHAPENET10_CLASSES)
    assert main(["classify", str(path), "--model", "no_such_model"]) == 2
    assert "no_such_model" in capsys.readouterr().err
    assert main(["classify", str(path), "--model", "toy"]) == 2  # a packaged model of another kind
    err = capsys.readouterr().err
    assert "toy_mlp" in err and "spherical_cnn" in err


def test_wrong_model_kind_is_refused():
    try:
        load_classifier("toy")
    except CheckpointError as e:
        assert "spherical_cnn" in str(e)
    else:
        raise AssertionError("a toy checkpoint was accepted as a classifier")
